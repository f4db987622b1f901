# snakenas: neural architecture search as a Snakemake workflow.
#
#   snakemake --cores 2                      the runs of config/config.yaml
#   snakemake --cores 2 --configfile my.yaml the runs of another config
#   snakemake -n                             the whole plan, every generation
#
# Each rule is one step of `python -m nas`; see README.md and DESIGN.md.

import os
import re
import shlex
import sys
from pathlib import Path

from snakemake.settings.types import DeploymentMethod
from snakemake.utils import min_version

min_version("9.0")

try:
    from nas import gpu_slots, layout
except ModuleNotFoundError:
    sys.exit(f"snakenas: the `nas` package is not installed in {sys.executable}; "
             f"run `make` (or `pip install -e .`) in {workflow.basedir}")
from nas.blocks import block_ends, block_length, starts_block, state_settled
from nas.config import (ConfigError, candidates_in, execution_settings, frozen, load_config, merge, resolve_runs,
                        screen_proxy)
from nas.evaluators import evaluator_for
from nas.evaluators.proxy import needs_network
from nas.io import dump_yaml, write_yaml
from nas.handoff import OWNER_ENV
from nas.shared_trainer import WARM_ENV

if "runs" not in config:
    given = [str(path) for path in workflow.overwrite_configfiles]
    if given:
        # A config file without runs would otherwise run the default search with its defaults merged in.
        sys.exit(f"snakenas: config file {', '.join(given)} has no `runs:`; name the runs to search "
                 "(runs: {my-run: {}}), as config/config.yaml does")
    # No --configfile: the default search; --config values still win.
    config.update(merge(load_config(Path(workflow.basedir) / layout.DEFAULT_CONFIG), config))

try:
    RUNS = resolve_runs(config)
    EXECUTION = execution_settings(config)
except ConfigError as e:
    sys.exit(f"snakenas: {e}")

# The GPU slots of this machine (nas/gpu_slots.py), handed to every local job in
# its environment: a job that uses CUDA takes one and sees that GPU only.
os.environ[gpu_slots.SLOTS_ENV] = gpu_slots.plan(gpu_slots.local_gpus(EXECUTION["local_gpus"]),
                                                 EXECUTION["trainings_per_gpu"])

# Every step is a `snakenas` command of the environment this snakemake runs in,
# found first on the jobs' PATH (whether or not that environment is activated);
# with --software-deployment-method conda, the rule's conda environment's instead.
# (A prefix replaces Snakemake's own, so it keeps the strict mode that one sets.)
# $PPID is the snakemake process running the job: its light steps fork from that
# one's servers, as its trainings do (nas/shared_trainer.py).
if DeploymentMethod.CONDA not in workflow.deployment_settings.deployment_method:
    shell.prefix(f"set -euo pipefail; export PATH={shlex.quote(str(Path(sys.executable).parent))}:\"$PATH\"; "
                 + (f"export {OWNER_ENV}=$PPID; " if EXECUTION["shared_trainer"] else ""))


report: "report/workflow.rst"


include: "rules/search.smk"
include: "rules/meta.smk"
include: "rules/final.smk"


rule all:
    input:
        [
            path(layout.run_dir(run))
            for run in RUNS
            for path in (layout.history, layout.summary, layout.best, layout.progress_plot, layout.pareto_table,
                         layout.pareto_plot, layout.importance_table, layout.importance_plot,
                         layout.architecture_plot, layout.overview)
        ],
        # Each run's task features: what makes its results knowledge for a
        # meta-model later (rules/meta.smk); the model itself where asked for.
        [layout.task_json(layout.run_dir(run)) for run in RUNS],
        META_TARGETS,
        # The final model of each run with a `final:` section (rules/final.smk).
        FINAL_TARGETS,
    default_target: True
