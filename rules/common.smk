# Input functions and wildcard patterns shared by the rules in search.smk.

RUN = layout.run_dir("{run}")
FINAL = layout.final_dir(RUN)
# The software of every rule, for --software-deployment-method conda (envs/snakenas.yaml).
SOFTWARE = "../envs/snakenas.yaml"
# Each run's evaluator (light: no torch), for what its jobs look like.
EVALUATORS = {name: evaluator_for(run) for name, run in RUNS.items()}
# Runs screened by a zero-cost proxy (a screen job per generation) -> the proxy.
SCREENED = {name: screen_proxy(run) for name, run in RUNS.items() if screen_proxy(run)}
# What a trainer server imports before it forks: the libraries of these runs' tasks.
os.environ[WARM_ENV] = ",".join(sorted({library for e in EVALUATORS.values() if e.needs_torch and e.data_task()
                                        for library in e.data_task().libraries}))


def run_of(wc):
    return RUNS[wc.run]


def runs_matching(names):
    """A `run` wildcard constraint that matches exactly these run names."""
    return "|".join(re.escape(n) for n in sorted(names)) or "(?!)"


def evaluator_inputs(wc):
    # Files every evaluation of the run reads (a benchmark table): a changed one re-runs it.
    return EVALUATORS[wc.run].inputs()


def run_dir(wc):
    return layout.run_dir(wc.run)


# Generations per block of each run: a long run is planned a block at a time (nas/blocks.py).
BLOCK_LENGTH = {name: block_length(run, EXECUTION["plan_candidates"]) for name, run in RUNS.items()}


def wait_for_block(run, g, settled=True):
    """Raise (for Snakemake) until the block ending at generation g has finished:
    the checkpoint end_of_block then stands in, and once it has run (or been
    found done) Snakemake plans what follows. Its file on disk is looked at
    first, so that blocks an earlier snakemake finished are not planned again
    one checkpoint at a time; `settled` False: the block is about to be made
    again in part, and what follows must wait for the checkpoint all the same."""
    if not (settled and os.path.exists(layout.end_of_block(layout.run_dir(run), g))):
        checkpoints.end_of_block.get(run=run, g=layout.gen_id(g))


def previous_state(wc):
    g = int(wc.g)
    rdir = layout.run_dir(wc.run)
    if g == 0:
        return []
    state = layout.state_dir(rdir, g - 1)
    if not starts_block(g, BLOCK_LENGTH[wc.run]):
        return [state]
    # A block's first generation reads the state before it without declaring
    # it, so that the plan of its block stops here; where that state is about
    # to be made again, the checkpoint after it is the edge to wait on. Never
    # declared either way: a declared input set that changed would re-run it.
    reads = [*EVALUATORS[wc.run].inputs(), *(layout.table(rdir, h) for h in range(g))]
    settled = state_settled(state, layout.run_config(rdir), dump_yaml(frozen(run_of(wc))), reads)
    wait_for_block(wc.run, g - 1, settled)
    return []


def generation_metrics(wc):
    rdir = layout.run_dir(wc.run)
    return [layout.metrics(rdir, wc.g, c) for c in range(candidates_in(run_of(wc), int(wc.g)))]


def all_tables(wc):
    # Listed from generation 0 upwards: Snakemake then resolves the chain one
    # generation at a time instead of recursing through all of it from the
    # last one, which would hit Python's recursion limit near 160 generations.
    # A long run's blocks are planned one after the other (nas/blocks.py).
    for end in block_ends(run_of(wc)["generations"], BLOCK_LENGTH[wc.run]):
        wait_for_block(wc.run, end)
    rdir = layout.run_dir(wc.run)
    return [layout.table(rdir, g) for g in range(run_of(wc)["generations"])]


def shared_trainer(wc):
    # $PPID is the snakemake process running the job: its training jobs fork
    # from one server that imported torch once (nas/shared_trainer.py). An
    # evaluator that imports no torch gains nothing from one.
    if EXECUTION["shared_trainer"] and EVALUATORS[wc.run].needs_torch:
        return "--shared-trainer $PPID"
    return ""


def _train_resources():
    """Resources of a training job; SLURM keys only where some run sets them,
    so that the profile's defaults hold otherwise."""
    res = {
        # A retried job (killed for memory, say) asks for more each attempt.
        "mem_mb": lambda wc, attempt: run_of(wc)["resources"]["mem_mb"] * attempt,
        "runtime": lambda wc: run_of(wc)["resources"]["runtime"],
        "gpu": lambda wc: run_of(wc)["resources"]["gpus"],
    }
    optional = {"gpu_model": "gpu_model", "slurm_partition": "partition"}
    for resource, key in optional.items():
        if any(run["resources"][key] for run in RUNS.values()):
            res[resource] = lambda wc, key=key: run_of(wc)["resources"][key] or ""
    return res


TRAIN_RESOURCES = _train_resources()


# One job per generation, whose outputs are every candidate's metrics.json and
# epochs.csv, as train's are. A rule's outputs are a fixed list and a
# generation's size depends on the run (population in generation 0, candidates
# after), so rules/search.smk makes one rule per size and kind of generation,
# each matching only its runs.
def per_generation_sizes():
    sizes = {}
    for name, run in RUNS.items():
        if EVALUATORS[name].per_generation:
            sizes.setdefault((run["population"], "first"), []).append(name)
            sizes.setdefault((run["candidates"], "later"), []).append(name)
    return sorted(sizes.items())


# -- the final model (rules/final.smk) ------------------------------------------------

# Run name -> its `final:` section, defaults filled.
FINAL_RUNS = {name: run["final"] for name, run in RUNS.items() if run.get("final")}


def final_of(wc):
    return FINAL_RUNS[wc.run]


def final_metrics(wc):
    rdir = layout.run_dir(wc.run)
    return [layout.metrics_in(layout.final_eval_dir(rdir, k)) for k in range(final_of(wc)["top"])]


def final_outputs(run):
    """The final files the default target asks of a run with a `final:` section."""
    rdir = layout.run_dir(run)
    folder = layout.final_dir(rdir)
    files = [layout.final_table(rdir), layout.model_state(folder), layout.model_program(folder),
             layout.model_card(folder), layout.architecture_plot(folder), layout.card_html(folder)]
    return files + ([layout.model_onnx(folder)] if FINAL_RUNS[run]["onnx"] else [])


FINAL_TARGETS = [path for run in FINAL_RUNS for path in final_outputs(run)]
