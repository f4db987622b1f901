"""Where each artefact of a run lives; the one place that knows the file names.

Functions take the generation and candidate as ints (for the steps) or as
strings (the Snakefile passes "{g}" and "{c}" to get wildcard patterns), so
the workflow and the code can never disagree on a path.

    results/{run}/run.yaml                      settings that define the run
    results/{run}/gen_{g}/candidates/{c}.yaml   specs proposed for generation g
    results/{run}/gen_{g}/proposals/{p}.yaml    with a screen by a proxy: what propose wrote, and
    results/{run}/gen_{g}/screen.tsv            each one's score and the candidate it became
    results/{run}/gen_{g}/evals/{c}/            metrics.json, epochs.csv (checkpoint.pt while training;
                                                predictions.png: a segmentation candidate's)
    results/{run}/gen_{g}/table.tsv             one row per candidate of g
    results/{run}/gen_{g}/state/state.json      strategy state after g (policy.pt: reinforce's weights)
    results/{run}/gen_{g}/end_of_block.yaml     g ended a block of a long run: the next is planned (nas/blocks.py)
    results/{run}/history.tsv, summary.json, best.yaml, progress.png, pareto.tsv, pareto.png,
                  importance.tsv, importance.png, architecture.png, overview.html, task.json
                  (predictions.png: the best segmentation candidate's)
    results/{run}/gen_{g}/evals/{c}/repeats/r{i}/  each finished training of a candidate (training.repeats > 1)
    results/{run}/final/                        final.yaml, candidates/{k}.yaml, evals/{k}/, final.tsv,
                                                weights.pt, model.pt, model.onnx, model.pt2, model.yaml,
                                                architecture.png, card.html (the `final:` step)
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


def gen_id(g: int | str) -> str:
    """A generation as its folder names it, and as the rules' {g} wildcard holds it."""
    return f"{g:03d}" if isinstance(g, int) else str(g)


def gen_name(g: int | str) -> str:
    return f"gen_{gen_id(g)}"


def cand_name(c: int | str) -> str:
    return f"c{c:02d}" if isinstance(c, int) else str(c)


def run_config(rdir: str | Path) -> str:
    return f"{rdir}/run.yaml"


def gen_dir(rdir: str | Path, g: int | str) -> str:
    return f"{rdir}/{gen_name(g)}"


def candidates_dir(rdir: str | Path, g: int | str) -> str:
    return f"{gen_dir(rdir, g)}/candidates"


def proposal_name(i: int | str) -> str:
    """A proposal that a screen scores (before it keeps the candidates among them)."""
    return f"p{i:03d}" if isinstance(i, int) else str(i)


def proposals_dir(rdir: str | Path, g: int | str) -> str:
    return f"{gen_dir(rdir, g)}/proposals"


def proposal_spec(rdir: str | Path, g: int | str, i: int | str) -> str:
    return f"{proposals_dir(rdir, g)}/{proposal_name(i)}.yaml"


def screen_table(rdir: str | Path, g: int | str) -> str:
    """Each proposal's score and the candidate it became (a screen by a proxy)."""
    return f"{gen_dir(rdir, g)}/screen.tsv"


def spec(rdir: str | Path, g: int | str, c: int | str) -> str:
    return f"{candidates_dir(rdir, g)}/{cand_name(c)}.yaml"


def eval_dir(rdir: str | Path, g: int | str, c: int | str) -> str:
    return f"{gen_dir(rdir, g)}/evals/{cand_name(c)}"


def metrics_in(eval_dir: str | Path) -> str:
    """A candidate's result, in its evaluation folder."""
    return f"{eval_dir}/metrics.json"


def predictions_in(eval_dir: str | Path) -> str:
    """A segmentation candidate's predictions on the first validation images (in its
    eval folder), or the run's best candidate's (in the run folder)."""
    return f"{eval_dir}/predictions.png"


def epochs_in(eval_dir: str | Path) -> str:
    """One row per training epoch, beside the metrics."""
    return f"{eval_dir}/epochs.csv"


def metrics(rdir: str | Path, g: int | str, c: int | str) -> str:
    return metrics_in(eval_dir(rdir, g, c))


def epochs(rdir: str | Path, g: int | str, c: int | str) -> str:
    return epochs_in(eval_dir(rdir, g, c))


def repeat_dir(eval_dir: str | Path, i: int) -> str:
    """One finished training of a candidate trained `training.repeats` times, kept
    beside its metrics so that a re-run trains only the missing ones."""
    return f"{eval_dir}/repeats/r{i}"


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


def end_of_block(rdir: str | Path, g: int | str) -> str:
    """Written when generation g, the last of a block of a long run, has finished:
    the checkpoint after which the next block is planned (nas/blocks.py)."""
    return f"{gen_dir(rdir, g)}/end_of_block.yaml"


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


def importance_table(rdir: str | Path) -> str:
    """How much each choice at each position moves the objective (the run's history)."""
    return f"{rdir}/importance.tsv"


def importance_plot(rdir: str | Path) -> str:
    return f"{rdir}/importance.png"


def architecture_plot(folder: str | Path) -> str:
    """A picture of an architecture: the run's best (in the run folder) or the final winner (in final/)."""
    return f"{folder}/architecture.png"


def overview(rdir: str | Path) -> str:
    return f"{rdir}/overview.html"


# -- the final model (rules/final.smk) ---------------------------------------------------


def final_dir(rdir: str | Path) -> str:
    return f"{rdir}/final"


def final_name(k: int | str) -> str:
    """The k-th of the run's top candidates, re-trained (k00 the best at search time)."""
    return f"k{k:02d}" if isinstance(k, int) else str(k)


def final_config(rdir: str | Path) -> str:
    """The run's `final:` section, defaults filled: changing it re-runs the final step only."""
    return f"{final_dir(rdir)}/final.yaml"


def final_candidates_dir(rdir: str | Path) -> str:
    return f"{final_dir(rdir)}/candidates"


def final_spec(rdir: str | Path, k: int | str) -> str:
    return f"{final_candidates_dir(rdir)}/{final_name(k)}.yaml"


def final_eval_dir(rdir: str | Path, k: int | str) -> str:
    return f"{final_dir(rdir)}/evals/{final_name(k)}"


def final_table(rdir: str | Path) -> str:
    """Each re-trained candidate: mean and std of every metric, its search-time score beside."""
    return f"{final_dir(rdir)}/final.tsv"


def final_weights(folder: str | Path) -> str:
    """The winner's trained weights with what they were trained from, kept before
    any export so that a failed export does not cost the training."""
    return f"{folder}/weights.pt"


def model_state(folder: str | Path) -> str:
    """The exported model's state dict (torch.load(..., weights_only=True))."""
    return f"{folder}/model.pt"


def model_onnx(folder: str | Path) -> str:
    return f"{folder}/model.onnx"


def model_program(folder: str | Path) -> str:
    """The exported model as a torch.export ExportedProgram (torch.export.load)."""
    return f"{folder}/model.pt2"


def model_card(folder: str | Path) -> str:
    """What the exported model is and how to load it (architecture, input, classes, metrics)."""
    return f"{folder}/model.yaml"


def card_html(folder: str | Path) -> str:
    """The model card as a page: final table, architecture, operation importance."""
    return f"{folder}/card.html"


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
    (a generation's candidates or proposals, a strategy's state)."""
    path = Path(path)
    return path.parent if path.parent.name in ("candidates", "proposals", "state") else path
