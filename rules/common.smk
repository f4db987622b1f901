# Input functions and wildcard patterns shared by the rules in search.smk.

RUN = layout.run_dir("{run}")


def run_of(wc):
    return RUNS[wc.run]


def run_dir(wc):
    return layout.run_dir(wc.run)


def previous_state(wc):
    g = int(wc.g)
    return [] if g == 0 else [layout.state_dir(layout.run_dir(wc.run), g - 1)]


def generation_metrics(wc):
    rdir = layout.run_dir(wc.run)
    return [layout.metrics(rdir, wc.g, c) for c in range(candidates_in(run_of(wc), int(wc.g)))]


def all_tables(wc):
    # Listed from generation 0 upwards: Snakemake then resolves the chain one
    # generation at a time instead of recursing through all of it from the
    # last one, which would hit Python's recursion limit near 160 generations.
    rdir = layout.run_dir(wc.run)
    return [layout.table(rdir, g) for g in range(run_of(wc)["generations"])]
