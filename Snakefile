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

from snakemake.utils import min_version

min_version("9.0")

sys.path.insert(0, workflow.basedir)
# Jobs run `python -m nas` from the working directory, which may be elsewhere.
os.environ["PYTHONPATH"] = os.pathsep.join(
    p for p in (workflow.basedir, os.environ.get("PYTHONPATH")) if p
)

from nas import layout
from nas.config import ConfigError, candidates_in, execution_settings, frozen, load_config, merge, resolve_runs
from nas.evaluators import evaluator_for
from nas.io import write_yaml

if "runs" not in config:
    # No --configfile: the default search; --config values still win.
    config.update(merge(load_config(Path(workflow.basedir) / "config" / "config.yaml"), config))

try:
    RUNS = resolve_runs(config)
    EXECUTION = execution_settings(config)
except ConfigError as e:
    sys.exit(f"snakenas: {e}")

# The same interpreter (and so the same environment) runs every step.
NAS = f"{shlex.quote(sys.executable)} -m nas"


report: "report/workflow.rst"


include: "rules/search.smk"
include: "rules/meta.smk"


rule all:
    input:
        [
            path(layout.run_dir(run))
            for run in RUNS
            for path in (layout.history, layout.summary, layout.best, layout.progress_plot, layout.overview)
        ],
        # Each run's task features: what makes its results knowledge for a
        # meta-model later (rules/meta.smk); the model itself where asked for.
        [layout.task_json(layout.run_dir(run)) for run in RUNS],
        META_TARGETS,
    default_target: True
