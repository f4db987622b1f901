"""Where each artefact of a run lives; the one place that knows the file names.

Functions take the generation and candidate as ints (for the steps) or as
strings (the Snakefile passes "{g}" and "{c}" to get wildcard patterns), so
the workflow and the code can never disagree on a path.

    results/{run}/run.yaml                      settings that define the run
    results/{run}/gen_{g}/candidates/{c}.yaml   specs proposed for generation g
    results/{run}/gen_{g}/evals/{c}/            metrics.json, epochs.csv (checkpoint.pt while training)
    results/{run}/gen_{g}/table.tsv             one row per candidate of g
    results/{run}/gen_{g}/state/state.json      strategy state after g (policy.pt: reinforce's weights)
    results/{run}/history.tsv, summary.json, best.yaml, progress.png, pareto.tsv, pareto.png,
                  overview.html, task.json
    results/meta/                               model.json, knowledge.tsv, tasks.json, build.log
    BENCH_OUT/                                  curves.tsv, summary.tsv, curves.png (meta/: its meta-model)
"""

from __future__ import annotations

from pathlib import Path

RESULTS = "results"
# The config a workflow (and `snakenas check`) reads when none is given, in the project or working folder.
DEFAULT_CONFIG = "config/config.yaml"
# The meta-model a config's `meta:` section builds (rules/meta.smk); no run may be named "meta".
META_DIR = f"{RESULTS}/meta"


def run_dir(run: str) -> str:
    return f"{RESULTS}/{run}"


def gen_name(g: int | str) -> str:
    return f"gen_{g:03d}" if isinstance(g, int) else f"gen_{g}"


def cand_name(c: int | str) -> str:
    return f"c{c:02d}" if isinstance(c, int) else str(c)


def run_config(rdir: str | Path) -> str:
    return f"{rdir}/run.yaml"


def gen_dir(rdir: str | Path, g: int | str) -> str:
    return f"{rdir}/{gen_name(g)}"


def candidates_dir(rdir: str | Path, g: int | str) -> str:
    return f"{gen_dir(rdir, g)}/candidates"


def spec(rdir: str | Path, g: int | str, c: int | str) -> str:
    return f"{candidates_dir(rdir, g)}/{cand_name(c)}.yaml"


def eval_dir(rdir: str | Path, g: int | str, c: int | str) -> str:
    return f"{gen_dir(rdir, g)}/evals/{cand_name(c)}"


def metrics_in(eval_dir: str | Path) -> str:
    """A candidate's result, in its evaluation folder."""
    return f"{eval_dir}/metrics.json"


def epochs_in(eval_dir: str | Path) -> str:
    """One row per training epoch, beside the metrics."""
    return f"{eval_dir}/epochs.csv"


def metrics(rdir: str | Path, g: int | str, c: int | str) -> str:
    return metrics_in(eval_dir(rdir, g, c))


def epochs(rdir: str | Path, g: int | str, c: int | str) -> str:
    return epochs_in(eval_dir(rdir, g, c))


def checkpoint_in(eval_dir: str | Path) -> str:
    """Training checkpoint of one candidate (execution.checkpoints), beside its metrics."""
    return f"{eval_dir}/checkpoint.pt"


def table(rdir: str | Path, g: int | str) -> str:
    return f"{gen_dir(rdir, g)}/table.tsv"


def state_dir(rdir: str | Path, g: int | str) -> str:
    return f"{gen_dir(rdir, g)}/state"


def state_json(state_dir: str | Path) -> Path:
    """A strategy's state in its state folder (a JSON-able dict, or a summary of it)."""
    return Path(state_dir) / "state.json"


def policy_file(state_dir: str | Path) -> Path:
    """A policy network's weights and optimizer (reinforce), in its state folder."""
    return Path(state_dir) / "policy.pt"


def log(rdir: str | Path, step: str, g: int | str | None = None, c: int | str | None = None) -> str:
    parts = [step] + ([gen_name(g)] if g is not None else []) + ([cand_name(c)] if c is not None else [])
    return f"{rdir}/logs/{'_'.join(parts)}.log"


def benchmark(rdir: str | Path, step: str, g: int | str | None = None, c: int | str | None = None) -> str:
    return log(rdir, step, g, c).replace("/logs/", "/benchmarks/").removesuffix(".log") + ".tsv"


def history(rdir: str | Path) -> str:
    return f"{rdir}/history.tsv"


def summary(rdir: str | Path) -> str:
    return f"{rdir}/summary.json"


def best(rdir: str | Path) -> str:
    return f"{rdir}/best.yaml"


def pareto_table(rdir: str | Path) -> str:
    """The run's feasible non-dominated candidates (the best one under one objective)."""
    return f"{rdir}/pareto.tsv"


def pareto_plot(rdir: str | Path) -> str:
    return f"{rdir}/pareto.png"


def progress_plot(rdir: str | Path) -> str:
    return f"{rdir}/progress.png"


def overview(rdir: str | Path) -> str:
    return f"{rdir}/overview.html"


def task_json(rdir: str | Path) -> str:
    """The run's task id and features (meta-learning)."""
    return f"{rdir}/task.json"


def meta_model(folder: str | Path) -> str:
    return f"{folder}/model.json"


def knowledge_table(folder: str | Path) -> str:
    """The knowledge base: one row per (task, architecture)."""
    return f"{folder}/knowledge.tsv"


def knowledge_tasks(folder: str | Path) -> str:
    """The knowledge base's tasks and their features."""
    return f"{folder}/tasks.json"


def meta_log(folder: str | Path) -> str:
    return f"{folder}/build.log"


def bench_curves(out: str | Path) -> Path:
    return Path(out) / "curves.tsv"


def bench_summary(out: str | Path) -> Path:
    return Path(out) / "summary.tsv"


def bench_plot(out: str | Path) -> Path:
    return Path(out) / "curves.png"


def bench_meta(out: str | Path) -> Path:
    """The leave-one-task-out meta-model of a benchmark's +meta strategies."""
    return Path(out) / "meta"


def remake_target(path: str | Path) -> Path:
    """What to move aside so that Snakemake re-makes a damaged artefact: the
    file itself, or the whole folder where the folder is the job's output
    (a generation's candidates, a strategy's state)."""
    path = Path(path)
    return path.parent if path.parent.name in ("candidates", "state") else path
