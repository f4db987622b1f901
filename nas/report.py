"""A run's final artefacts: history.tsv, summary.json, best.yaml, progress.png, overview.html."""

from __future__ import annotations

import math
import statistics
from pathlib import Path
from typing import Any, Sequence

from nas import layout
from nas.io import atomic_write_text, read_json, read_yaml, write_json, write_figure, write_tsv, write_yaml
from nas.search import COLUMNS, fitness
from nas.steps import load_history, load_run


def best_row(rows: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """The fittest ok candidate; the earliest one wins a tie."""
    scored = [(fitness(r), -i) for i, r in enumerate(rows)]
    if not rows or max(scored)[0] == -math.inf:
        return None
    return rows[-max(scored)[1]]


def best_so_far(rows: Sequence[dict[str, Any]]) -> list[float]:
    """Validation accuracy of the best candidate after each evaluation (nan before any ok)."""
    out, best = [], -math.inf
    for r in rows:
        best = max(best, fitness(r))
        out.append(best if best > -math.inf else math.nan)
    return out


def _number(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _count(value: Any) -> int | None:
    number = _number(value)
    return int(number) if math.isfinite(number) else None


def spread(values: Sequence[float]) -> dict[str, float | int]:
    values = sorted(v for v in values if math.isfinite(v))
    if not values:
        return {"count": 0}
    q = statistics.quantiles(values, n=4, method="inclusive") if len(values) > 1 else [values[0]] * 3
    return {
        "count": len(values),
        "min": round(values[0], 4),
        "q1": round(q[0], 4),
        "median": round(q[1], 4),
        "q3": round(q[2], 4),
        "max": round(values[-1], 4),
        "std": round(statistics.pstdev(values), 4),
    }


def summarise(run: dict[str, Any], rows: Sequence[dict[str, Any]], generations: int) -> dict[str, Any]:
    best = best_row(rows)
    statuses: dict[str, int] = {}
    for r in rows:
        statuses[r["status"]] = statuses.get(r["status"], 0) + 1
    ok = [r for r in rows if r["status"] == "ok"]
    per_gen = []
    curve = best_so_far(rows)
    for g in range(generations):
        last = max((i for i, r in enumerate(rows) if int(r["generation"]) == g), default=None)
        per_gen.append(None if last is None or math.isnan(curve[last]) else round(curve[last], 4))
    return {
        "run": run["name"],
        "space": run["space"]["name"],
        "strategy": run["strategy"]["name"],
        "task": run["task"]["name"] if run["evaluator"]["name"] == "train" else run["evaluator"].get("path"),
        "evaluator": run["evaluator"]["name"],
        "seed": run["seed"],
        "generations": generations,
        "evaluations": len(rows),
        "status": dict(sorted(statuses.items())),
        "best": None
        if best is None
        else {
            "arch": best["arch"],
            "generation": int(best["generation"]),
            "candidate": best["candidate"],
            "val_acc": _number(best["val_acc"]),
            "test_acc": _number(best["test_acc"]),
            "params": _count(best["params"]),
            "flops": _count(best["flops"]),
        },
        "best_val_acc_by_generation": per_gen,
        "val_acc_spread": spread([_number(r["val_acc"]) for r in ok]),
        "train_seconds_total": round(sum(_number(r["train_seconds"]) for r in ok if r["train_seconds"]), 2),
    }


def plot_progress(rows: Sequence[dict[str, Any]], title: str, path: str | Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    x = list(range(1, len(rows) + 1))
    val = [_number(r["val_acc"]) if r["status"] == "ok" else math.nan for r in rows]
    gens = [int(r["generation"]) for r in rows]
    points = ax.scatter(x, val, c=gens, cmap="viridis", s=14, alpha=0.7, label="candidate")
    ax.step(x, best_so_far(rows), where="post", color="C3", lw=2, label="best so far")
    ax.set_xlabel("evaluations")
    ax.set_ylabel("validation accuracy (%)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    from matplotlib.ticker import MaxNLocator

    fig.colorbar(points, ax=ax, label="generation", ticks=MaxNLocator(integer=True))
    fig.tight_layout()
    write_figure(path, fig)


def report(rdir: str | Path, generations: int) -> dict[str, Any]:
    run = load_run(rdir)
    rows = load_history(rdir, run, generations)
    write_tsv(layout.history(rdir), COLUMNS, rows)
    summary = summarise(run, rows, generations)
    write_json(layout.summary(rdir), summary)
    best = best_row(rows)
    if best is not None:
        g, c = int(best["generation"]), best["candidate"]
        spec = read_yaml(layout.spec(rdir, g, c))
        metrics = read_json(layout.metrics(rdir, g, c))
        metrics.pop("job", None)  # where and how the job ran: not the candidate's result
        write_yaml(layout.best(rdir), {**spec, "metrics": metrics})
    else:
        write_yaml(layout.best(rdir), {"run": run["name"], "note": "no candidate finished with status ok"})
    plot_progress(rows, f"{run['name']}: {run['strategy']['name']} on {run['space']['name']}", layout.progress_plot(rdir))
    write_overview(rdir, run, rows, generations)
    return summary


def write_overview(rdir: str | Path, run: dict[str, Any], rows: Sequence[dict[str, Any]], generations: int) -> None:
    """overview.html: the run's tables and best architecture as one page (the Snakemake report shows HTML)."""
    from nas.inspect import RunScan, overview_html, table_row

    gens = list(range(generations))
    scan = RunScan(Path(rdir), settings=run, generations=gens, done=gens, rows=[table_row(r) for r in rows])
    atomic_write_text(layout.overview(rdir), overview_html(scan))
