# Meta-learning: each run's task features (task.json) and the meta-model
# (results/meta/) built from the finished runs and the tables of `meta:`.
#
#   snakemake results/meta/model.json    the knowledge base and the meta-model
#
# A run with `warm_start: {model: results/meta}` reads the model when it
# proposes its first generation: rule propose declares it (warm_start_inputs),
# so one `snakemake` builds the model before the warm-started runs.

import json

from nas.meta.settings import META_DIR, meta_runs, warm_start_inputs

META = config.get("meta") or {}
try:
    META_RUNS = meta_runs(META, RUNS)
except ConfigError as e:
    sys.exit(f"snakenas: {e}")
# What `rule all` may ask for: the meta-model when the config has a `meta:` section.
META_TARGETS = [layout.meta_model(META_DIR)] if META else []



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
    conda:
        SOFTWARE
    shell:
        "snakenas meta task {params.rdir} > {log} 2>&1"


rule meta_model:
    input:
        histories=[layout.history(layout.run_dir(r)) for r in META_RUNS],
        tasks=[layout.task_json(layout.run_dir(r)) for r in META_RUNS],
        tables=[t["path"] for t in META.get("tables", [])],
    output:
        model=layout.meta_model(META_DIR),
        knowledge=layout.knowledge_table(META_DIR),
        tasks=layout.knowledge_tasks(META_DIR),
    params:
        runs=[layout.run_dir(r) for r in META_RUNS],
        # The tables' columns and features and the space: changing them rebuilds the model.
        settings=json.dumps({k: v for k, v in META.items() if k != "runs"}, sort_keys=True),
    log:
        layout.meta_log(META_DIR),
    conda:
        SOFTWARE
    shell:
        "snakenas meta build --out $(dirname {output.model}) --runs {params.runs} --meta {params.settings:q}"
        " > {log} 2>&1"
