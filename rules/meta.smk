# Meta-learning: each run's task features (task.json) and the meta-model
# (results/meta/) built from the finished runs and the tables of `meta:`.
#
#   snakemake results/meta/model.json    the knowledge base and the meta-model
#
# A run with `warm_start: {model: results/meta}` reads the model when it
# proposes its first generation: rule propose declares it (warm_start_inputs),
# so one `snakemake` builds the model before the warm-started runs.

from nas.meta.settings import META_DIR, meta_runs, warm_start_inputs

META = config.get("meta") or {}
try:
    META_RUNS = meta_runs(META, RUNS)
except ConfigError as e:
    sys.exit(f"snakenas: {e}")
# What `rule all` may ask for: the meta-model when the config has a `meta:` section.
META_TARGETS = [f"{META_DIR}/model.json"] if META else []



localrules:
    meta_model,


rule task_features:
    input:
        settings=layout.run_config(RUN),
    output:
        layout.task_json(RUN),
    log:
        layout.log(RUN, "task"),
    params:
        rdir=run_dir,
    shell:
        "{NAS} meta task {params.rdir} > {log} 2>&1"


rule meta_model:
    input:
        histories=[layout.history(layout.run_dir(r)) for r in META_RUNS],
        tasks=[layout.task_json(layout.run_dir(r)) for r in META_RUNS],
        tables=[t["path"] for t in META.get("tables", [])],
    output:
        model=f"{META_DIR}/model.json",
        knowledge=f"{META_DIR}/knowledge.tsv",
        tasks=f"{META_DIR}/tasks.json",
    params:
        # The tables' columns and features and the space: changing them rebuilds the model.
        settings={k: v for k, v in META.items() if k != "runs"},
    log:
        f"{META_DIR}/build.log",
    run:
        from nas.meta.build import build

        model = build(META_DIR, runs=[layout.run_dir(r) for r in META_RUNS],
                      tables=META.get("tables", []), space=META.get("space"))
        with open(log[0], "w") as f:
            print(f"{len(model.scores)} tasks; weights from {len(META_RUNS)} runs", file=f)
