"""A candidate trained `training.repeats` times: its metrics are the mean of the trainings.

One short training ranks architectures with the luck of its seed (on the noisy
digits variant two single trainings of the same 48 cells agree with a rank
correlation of only 0.41, docs/digits.md); the mean of k trainings with
different seeds removes part of that. Repeat 0 trains with the candidate's own
seed, so `repeats: 1` is exactly the single training of before, with the same
columns; repeat i > 0 with a seed derived from it.

All repeats run in the candidate's one job. In the workflow each finished
repeat is kept in `evals/{c}/repeats/r{i}/` (its metrics.json and epochs.csv,
with a fingerprint of what it trained), so a job killed after two of three
repeats trains only the third when it runs again. The combined result:

    status         ok when at least one repeat is ok (else the first repeat's)
    each varying   the mean over the ok repeats, and `{metric}_std` (sample std;
    metric         empty with fewer than two ok repeats)
    repeats        how many repeats are ok (the count the mean is over)
    train_seconds  the sum over all repeats (the candidate's training time)
    the rest       (params, flops, device, epochs...) the first ok repeat's
    epochs.csv     each epoch's mean over the ok repeats
"""

from __future__ import annotations

import hashlib
import json
import math
import statistics
from pathlib import Path
from typing import Any, Callable, Sequence

from nas import layout
from nas.evaluators.base import REPEATS_COLUMN, Evaluation, Evaluator, repeats_of, std_column
from nas.io import ArtefactError, read_json, read_tsv, write_json, write_tsv
from nas.objectives import number
from nas.seeding import int_seed


def repeat_seed(seed: int, i: int) -> int:
    """Repeat 0 trains with the candidate's own seed; the others with seeds derived from it."""
    return int(seed) if i == 0 else int_seed(int(seed), i, "repeat")


def repeat_spec(spec: dict[str, Any], i: int) -> dict[str, Any]:
    """The spec of one repeat: its own seed, and a single training."""
    training = {**(spec.get("training") or {}), "repeats": 1}
    return {**spec, "seed": repeat_seed(spec["seed"], i), "training": training}


def fingerprint(spec: dict[str, Any]) -> str:
    """What determines a training's course (a kept repeat, a checkpoint, the final
    model's weights are reused only by the same)."""
    defining = {k: spec.get(k) for k in ("arch", "space", "task", "seed", "run_seed", "training", "evaluator")}
    return hashlib.sha256(json.dumps(defining, sort_keys=True, default=str).encode()).hexdigest()


def write_evaluation(out_dir: str | Path, result: Evaluation, epoch_columns: Sequence[str],
                     extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """epochs.csv, then metrics.json (a metrics file is there only once its epochs are)."""
    metrics = {**result.metrics, **(extra or {})}
    write_tsv(layout.epochs_in(out_dir), epoch_columns, result.epochs)
    write_json(layout.metrics_in(out_dir), metrics)
    return metrics


def _kept(folder: str, print_line: Callable[[str], None], wanted: str) -> Evaluation | None:
    if not Path(layout.metrics_in(folder)).is_file():
        return None
    try:
        metrics = read_json(layout.metrics_in(folder))
        epochs = read_tsv(layout.epochs_in(folder))
    except ArtefactError as e:
        print_line(f"{folder}: kept repeat ignored ({e}); training it again")
        return None
    if not isinstance(metrics, dict) or metrics.get("fingerprint") != wanted:
        print_line(f"{folder}: kept repeat ignored (it was trained from another spec); training it again")
        return None
    metrics.pop("fingerprint")
    return Evaluation(metrics, [{k: number(v) for k, v in row.items()} for row in epochs])


def evaluate_repeated(evaluator: Evaluator, spec: dict[str, Any], out_dir: str | Path | None = None,
                      checkpoint: bool = False, log: Callable[[str], None] = print) -> Evaluation:
    """The spec evaluated `training.repeats` times and combined; with `out_dir`, each
    finished repeat is kept there and a kept one is not trained again."""
    k = repeats_of(spec)
    if k <= 1:
        return evaluator.evaluate(spec, out_dir, checkpoint)
    results = []
    for i in range(k):
        one = repeat_spec(spec, i)
        if out_dir is None:
            results.append(evaluator.evaluate(one, None, False))
            continue
        folder = layout.repeat_dir(out_dir, i)
        wanted = fingerprint(one)
        kept = _kept(folder, log, wanted)
        if kept is None:
            Path(folder).mkdir(parents=True, exist_ok=True)
            result = evaluator.evaluate(one, folder, checkpoint)
            write_evaluation(folder, result, evaluator.epoch_columns, {"fingerprint": wanted})
            # Read back as a resumed job would: both then combine the same values.
            kept = _kept(folder, log, wanted)
        else:
            log(f"{folder}: repeat {i} kept from an earlier job, not trained again")
        results.append(kept)
    return combine(results, evaluator.varying_metrics, evaluator.epoch_columns)


def combine(results: Sequence[Evaluation], varying: Sequence[str], epoch_columns: Sequence[str]) -> Evaluation:
    """One result from several trainings of a candidate (see the module docstring)."""
    ok = [r for r in results if r.metrics.get("status") == "ok"]
    base = dict((ok or results)[0].metrics)
    for name in varying:
        numbers = [number(r.metrics.get(name)) for r in ok]
        numbers = [v for v in numbers if math.isfinite(v)]
        base[name] = statistics.fmean(numbers) if numbers else math.nan
        base[std_column(name)] = statistics.stdev(numbers) if len(numbers) > 1 else math.nan
    base[REPEATS_COLUMN] = len(ok)
    seconds = [number(r.metrics.get("train_seconds")) for r in results]
    base["train_seconds"] = round(sum(s for s in seconds if math.isfinite(s)), 3)
    return Evaluation(base, _mean_epochs([r.epochs for r in ok] or [results[0].epochs], epoch_columns))


def _mean_epochs(runs: Sequence[Sequence[dict[str, Any]]], columns: Sequence[str]) -> list[dict[str, Any]]:
    """Each epoch's mean over the runs that reached it."""
    longest = max((len(r) for r in runs), default=0)
    rows = []
    for e in range(longest):
        reached = [r[e] for r in runs if len(r) > e]
        row = {}
        for column in columns:
            numbers = [number(x.get(column)) for x in reached]
            row[column] = statistics.fmean(numbers) if all(math.isfinite(v) for v in numbers) else math.nan
        row["epoch"] = e + 1
        rows.append(row)
    return rows


