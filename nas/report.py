"""A run's final artefacts: history.tsv, summary.json, best.yaml, progress.png, overview.html."""

from __future__ import annotations

import math
import statistics
from pathlib import Path
from typing import Any, Sequence

from nas import layout
from nas.config import load_run
from nas.evaluators import evaluator_for
from nas.inspect import RunScan, overview_html, table_row
from nas.io import atomic_write_text, read_json, read_yaml, write_json, write_figure, write_tsv, write_yaml
from nas.objectives import (
    best_row,
    best_so_far,
    constraints_of,
    front_hypervolume,
    hypervolume_bounds,
    label,
    natural,
    objectives_of,
    pareto_rows,
    primary,
    values,
)
from nas.search import columns
from nas.steps import load_history


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


# Integer-valued metrics, shown as whole numbers in the summary.
COUNTS = ("params", "flops")


def summarise(run: dict[str, Any], rows: Sequence[dict[str, Any]], generations: int) -> dict[str, Any]:
    objectives = objectives_of(run)
    metric = primary(objectives)
    evaluator = evaluator_for(run)
    best = best_row(rows, objectives)
    statuses: dict[str, int] = {}
    for r in rows:
        statuses[r["status"]] = statuses.get(r["status"], 0) + 1
    ok = [r for r in rows if r["status"] == "ok"]
    per_gen = []
    curve = best_so_far(rows, objectives)
    for g in range(generations):
        last = max((i for i, r in enumerate(rows) if int(r["generation"]) == g), default=None)
        per_gen.append(None if last is None or math.isnan(curve[last]) else round(curve[last], 4))
    shown = [m for m in evaluator.produces if m != "train_seconds"]
    return {
        "run": run["name"],
        "space": run["space"]["name"],
        "strategy": run["strategy"]["name"],
        "task": run["task_id"],
        "evaluator": run["evaluator"]["name"],
        "seed": run["seed"],
        "generations": generations,
        "evaluations": len(rows),
        "status": dict(sorted(statuses.items())),
        "objective": objectives[0],
        "best": None
        if best is None
        else {
            "arch": best["arch"],
            "generation": int(best["generation"]),
            "candidate": best["candidate"],
            **{m: _count(best[m]) if m in COUNTS else _number(best[m]) for m in shown},
        },
        "best_by_generation": per_gen,
        "spread": spread([_number(r[metric]) for r in ok]),
        "train_seconds_total": round(sum(_number(r["train_seconds"]) for r in ok if r["train_seconds"]), 2),
        **({"pareto": pareto_summary(run, rows, generations)} if len(objectives) > 1 else {}),
    }


def pareto_summary(run: dict[str, Any], rows: Sequence[dict[str, Any]], generations: int) -> dict[str, Any]:
    """The feasible front and its hypervolume, after the run and after each generation:
    objectives normalised by the final front's ideal and nadir (the nadir replaced by
    the run's reference_point where given), the reference point the nadir."""
    objectives, constraints = objectives_of(run), constraints_of(run)
    front = pareto_rows(rows, objectives, constraints)
    if not front:
        return {"size": 0, "hypervolume": 0.0, "by_generation": [{"size": 0, "hypervolume": 0.0}] * generations}
    ideal, nadir = hypervolume_bounds([values(r, objectives) for r in front], objectives, run.get("reference_point"))
    by_generation = []
    for g in range(generations):
        upto = [r for r in rows if int(r["generation"]) <= g]
        by_generation.append({"size": len(pareto_rows(upto, objectives, constraints)),
                              "hypervolume": round(front_hypervolume(upto, objectives, constraints, ideal, nadir), 6)})
    return {
        "size": len(front),
        "hypervolume": round(front_hypervolume(front, objectives, constraints, ideal, nadir), 6),
        "ideal": {o["metric"]: natural(v, o) for o, v in zip(objectives, ideal)},
        "nadir": {o["metric"]: natural(v, o) for o, v in zip(objectives, nadir)},
        "front": [{"arch": r["arch"], "generation": int(r["generation"]), "candidate": r["candidate"],
                   **{o["metric"]: _number(r[o["metric"]]) for o in objectives}} for r in front],
        "by_generation": by_generation,
    }


def plot_pareto(rows: Sequence[dict[str, Any]], objectives, front: Sequence[dict[str, Any]], title: str,
                path: str | Path) -> None:
    """The first objective against the second (one objective: against params, when
    the rows have them, else against the evaluation), every candidate coloured by
    generation, infeasible ones marked x, `front` (rows of `rows`) drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    y_metric = primary(objectives)
    if len(objectives) > 1:
        x_metric = objectives[1]["metric"]
    else:
        x_metric = "params" if any(math.isfinite(_number(r.get("params"))) for r in rows) else None

    def x_of(i: int, r: dict[str, Any]) -> float:
        return _number(r.get(x_metric)) if x_metric else float(i + 1)

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=100)
    measured = [(i, r) for i, r in enumerate(rows) if r["status"] in ("ok", "infeasible")]
    for status, marker in (("ok", "o"), ("infeasible", "x")):
        pts = [(x_of(i, r), _number(r[y_metric]), int(r["generation"])) for i, r in measured if r["status"] == status]
        if pts:
            xs, ys, gs = zip(*pts)
            points = ax.scatter(xs, ys, c=gs, cmap="viridis", s=16, marker=marker, alpha=0.75,
                                vmin=0, vmax=max(int(r["generation"]) for r in rows), label=status)
    index = {id(r): i for i, r in enumerate(rows)}
    if front:
        pts = sorted((x_of(index[id(r)], r), _number(r[y_metric])) for r in front)
        ax.step([p[0] for p in pts], [p[1] for p in pts], where="post", color="C3", lw=1.5, label="front")
        ax.scatter([p[0] for p in pts], [p[1] for p in pts], s=40, facecolors="none", edgecolors="C3")
    ax.set_xlabel(label(x_metric) if x_metric else "evaluations")
    ax.set_ylabel(label(y_metric))
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="best")
    if measured:
        fig.colorbar(points, ax=ax, label="generation", ticks=MaxNLocator(integer=True))
    fig.tight_layout()
    write_figure(path, fig)


def plot_progress(rows: Sequence[dict[str, Any]], objectives, title: str, path: str | Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    metric = primary(objectives)
    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    x = list(range(1, len(rows) + 1))
    value = [_number(r[metric]) if r["status"] == "ok" else math.nan for r in rows]
    gens = [int(r["generation"]) for r in rows]
    points = ax.scatter(x, value, c=gens, cmap="viridis", s=14, alpha=0.7, label="candidate")
    ax.step(x, best_so_far(rows, objectives), where="post", color="C3", lw=2, label="best so far")
    ax.set_xlabel("evaluations")
    ax.set_ylabel(label(metric))
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right" if objectives[0]["direction"] == "max" else "upper right")
    fig.colorbar(points, ax=ax, label="generation", ticks=MaxNLocator(integer=True))
    fig.tight_layout()
    write_figure(path, fig)


def report(rdir: str | Path, generations: int) -> dict[str, Any]:
    run = load_run(rdir)
    rows = load_history(rdir, run, generations)
    write_tsv(layout.history(rdir), columns(run), rows)
    summary = summarise(run, rows, generations)
    write_json(layout.summary(rdir), summary)
    objectives, constraints = objectives_of(run), constraints_of(run)
    best = best_row(rows, objectives)
    if best is not None:
        g, c = int(best["generation"]), best["candidate"]
        spec = read_yaml(layout.spec(rdir, g, c))
        metrics = read_json(layout.metrics(rdir, g, c))
        metrics.pop("job", None)  # where and how the job ran: not the candidate's result
        write_yaml(layout.best(rdir), {**spec, "metrics": metrics})
    else:
        write_yaml(layout.best(rdir), {"run": run["name"], "note": "no candidate finished with status ok"})
    title = f"{run['name']}: {run['strategy']['name']} on {run['space']['name']}"
    plot_progress(rows, objectives, title, layout.progress_plot(rdir))
    # Under one objective the front is the best candidate alone.
    front = pareto_rows(rows, objectives, constraints) if len(objectives) > 1 else [r for r in [best] if r is not None]
    write_tsv(layout.pareto_table(rdir), columns(run), front)
    plot_pareto(rows, objectives, front, title, layout.pareto_plot(rdir))
    write_overview(rdir, run, rows, generations)
    return summary


def write_overview(rdir: str | Path, run: dict[str, Any], rows: Sequence[dict[str, Any]], generations: int) -> None:
    """overview.html: the run's tables and best architecture as one page (the Snakemake report shows HTML)."""
    gens = list(range(generations))
    scan = RunScan(Path(rdir), settings=run, generations=gens, done=gens, rows=[table_row(r) for r in rows])
    atomic_write_text(layout.overview(rdir), overview_html(scan))
