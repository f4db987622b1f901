"""A run's final artefacts: history.tsv, summary.json, best.yaml, progress.png, pareto.tsv, pareto.png,
importance.tsv, importance.png, architecture.png, overview.html."""

from __future__ import annotations

import math
import statistics
import textwrap
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from nas import layout
from nas.config import load_run
from nas.evaluators import evaluator_for
from nas.importance import COLUMNS as IMPORTANCE_COLUMNS
from nas.importance import fitted, operation_importance
from nas.inspect import RunScan, best_predictions, overview_html, table_row
from nas.io import atomic_write_text, read_json, read_yaml, write_json, write_figure, write_tsv, write_yaml
from nas.objectives import (
    best_row,
    best_so_far,
    constraints_of,
    fitness,
    front_hypervolume,
    hypervolume_bounds,
    label,
    natural,
    number,
    objectives_of,
    pareto_rows,
    primary,
    values,
)
from nas.search import columns, evaluated
from nas.seeding import int_seed
from nas.spaces import make_space
from nas.spaces.base import Genome, SearchSpace
from nas.steps import load_history



def _count(value: Any) -> int | None:
    value = number(value)
    return int(value) if math.isfinite(value) else None


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
            **{m: _count(best[m]) if m in COUNTS else number(best[m]) for m in shown},
        },
        "best_by_generation": per_gen,
        "spread": spread([number(r[metric]) for r in ok]),
        "train_seconds_total": round(sum(number(r["train_seconds"]) for r in ok if r["train_seconds"]), 2),
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
                   **{o["metric"]: number(r[o["metric"]]) for o in objectives}} for r in front],
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
        x_metric = "params" if any(math.isfinite(number(r.get("params"))) for r in rows) else None

    def x_of(i: int, r: dict[str, Any]) -> float:
        return number(r.get(x_metric)) if x_metric else float(i + 1)

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=100)
    measured = [(i, r) for i, r in enumerate(rows) if r["status"] in ("ok", "infeasible")]
    for status, marker in (("ok", "o"), ("infeasible", "x")):
        pts = [(x_of(i, r), number(r[y_metric]), int(r["generation"])) for i, r in measured if r["status"] == status]
        if pts:
            xs, ys, gs = zip(*pts)
            points = ax.scatter(xs, ys, c=gs, cmap="viridis", s=16, marker=marker, alpha=0.75,
                                vmin=0, vmax=max(int(r["generation"]) for r in rows), label=status)
    index = {id(r): i for i, r in enumerate(rows)}
    if front:
        pts = sorted((x_of(index[id(r)], r), number(r[y_metric])) for r in front)
        ax.step([p[0] for p in pts], [p[1] for p in pts], where="post", color="C3", lw=1.5, label="front")
        ax.scatter([p[0] for p in pts], [p[1] for p in pts], s=40, facecolors="none", edgecolors="C3")
    ax.set_xlabel(label(x_metric) if x_metric else "evaluations")
    ax.set_ylabel(label(y_metric))
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:  # nothing measured: no legend to show
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
    value = [number(r[metric]) if r["status"] == "ok" else math.nan for r in rows]
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


# -- interpretability: the best architecture's picture and the choices that moved the objective --


def run_importance(run: dict[str, Any], rows: Sequence[dict[str, Any]], space: SearchSpace) -> list[dict[str, Any]]:
    """Operation importance of the run's history (nas.importance): the primary objective
    of each ok candidate, in its own units, against its genes. The bootstrap's seed is
    the run's, so a report written again gives the same table."""
    objectives = objectives_of(run)
    scored = [(r, natural(fitness(r, objectives), objectives[0])) for r in rows]
    scored = [(evaluated(r, objectives).genome, score) for r, score in scored if math.isfinite(score)]
    return operation_importance([g for g, _ in scored], [s for _, s in scored], space,
                                seed=int_seed(run["seed"], 0, "importance"))


def plot_note(note: str, title: str, path: str | Path) -> None:
    """A figure that says why there is nothing to draw (no ok candidate, too few scores)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 2), dpi=100)
    ax.axis("off")
    ax.set_title(title)
    ax.text(0.5, 0.5, note, ha="center", va="center", wrap=True, color="0.3")
    write_figure(path, fig)


def _cell_edges(described: Any) -> list[tuple[int, int, str]] | None:
    """(source, target, op) of a cell described as {"node1": ["op~0"], "node2": [...], ...}
    (nodes numbered from 1, node0 the input); None when `described` is not of that form."""
    if not isinstance(described, dict) or not described:
        return None
    edges = []
    for name, incoming in described.items():
        if not (isinstance(name, str) and name.startswith("node") and name[4:].isdigit()
                and isinstance(incoming, list)):
            return None
        for edge in incoming:
            op, sep, source = str(edge).rpartition("~")
            if not sep or not source.isdigit() or int(source) >= int(name[4:]):
                return None
            edges.append((int(source), int(name[4:]), op))
    return edges


def _layer_text(layer: dict[str, Any]) -> str:
    """A layer box's lines: its type, then each parameter (chain's named the way a reader says them)."""
    lines = [str(layer.get("type", "layer")).replace("_", " ")]
    for key, value in layer.items():
        if key == "type":
            continue
        lines.append({"kernel": f"{value}x{value}", "filters": f"{value} filters",
                      "stride": f"stride {value}", "activation": str(value)}.get(key, f"{key} {value}"))
    return "\n".join(lines)


# What carries nothing and what carries the input unchanged: drawn in grey and black, not in a colour.
PLAIN = {"none": "0.7", "skip_connect": "0.15"}


def _palette(space: Any, drawn: Sequence[str]) -> dict[str, str]:
    """A colour per operation or layer type, in the order of the space's gene labels, so
    that an operation has the same colour in every picture of the space."""
    labels = space.gene_labels() if hasattr(space, "gene_labels") else []
    names = [n for n in dict.fromkeys([*(v for _, values in labels for v in values), *drawn]) if n not in PLAIN]
    return {**{name: f"C{i % 10}" for i, name in enumerate(names)}, **PLAIN}


def _draw_cell(ax, edges: list[tuple[int, int, str]], colours: dict[str, str]) -> None:
    """Nodes left to right, the input first and the output last; an edge between
    neighbours is straight, a longer one an arc (even spans above, odd below, higher
    with the span), each labelled with its op at its middle. `none` edges are faint
    and dashed (they carry nothing); skip connections plain; the rest coloured by op."""
    from matplotlib.patches import Circle, FancyArrowPatch

    nodes = 1 + max(target for _, target, _ in edges)
    circles = []
    for node in range(nodes):
        circle = Circle((node, 0), 0.16, facecolor="white", edgecolor="0.2", lw=1.5, zorder=3)
        ax.add_patch(circle)
        circles.append(circle)
        ax.text(node, 0, str(node), ha="center", va="center", fontsize=11, zorder=4)
        role = "input" if node == 0 else "output" if node == nodes - 1 else ""
        if role:
            ax.text(node, -0.24, role, ha="center", va="top", fontsize=9, color="0.3")
    for source, target, op in edges:
        span = target - source
        rad = 0.0 if span == 1 else (-0.5 if span % 2 == 0 else 0.5)  # negative bends the arc upwards
        faint = op == "none"
        ax.add_patch(FancyArrowPatch(
            (source, 0), (target, 0), patchA=circles[source], patchB=circles[target],
            connectionstyle=f"arc3,rad={rad}", arrowstyle="-|>", mutation_scale=14,
            color=colours[op], lw=1.0 if faint else 1.8, linestyle="--" if faint else "-", zorder=2))
        # The middle of arc3's quadratic curve lies rad * span / 2 below the chord.
        y = -rad * span / 2
        ax.text((source + target) / 2, y + (0.07 if span == 1 else 0.0), op, ha="center",
                va="bottom" if span == 1 else "center", fontsize=9, color="0.55" if faint else colours[op],
                bbox={"boxstyle": "round,pad=0.15", "facecolor": "white", "edgecolor": "none", "alpha": 0.9},
                zorder=5)
    ax.set_xlim(-0.5, nodes - 0.5)
    ax.set_ylim(-0.25 * (nodes - 1) - 0.3, 0.25 * (nodes - 1) + 0.2)
    ax.set_aspect("equal")


def _draw_layers(ax, layers: list[dict[str, Any]], colours: dict[str, str]) -> None:
    """The input, each layer as a box with its parameters, then the classification
    head (global average pooling, linear), left to right with arrows between."""
    from matplotlib.patches import FancyBboxPatch

    boxes = ([("input", "0.85")] + [(_layer_text(layer), colours[str(layer.get("type"))]) for layer in layers]
             + [("global\naverage\npooling", "0.85"), ("linear\n(classes)", "0.85")])
    for i, (text, colour) in enumerate(boxes):
        ax.add_patch(FancyBboxPatch((i * 1.4 - 0.5, -0.6), 1.0, 1.2, boxstyle="round,pad=0.04",
                                    facecolor=colour, alpha=0.25 if colour != "0.85" else 0.6, edgecolor="0.3"))
        ax.text(i * 1.4, 0, text, ha="center", va="center", fontsize=9)
        if i:
            ax.annotate("", (i * 1.4 - 0.52, 0), (i * 1.4 - 0.88, 0),
                        arrowprops={"arrowstyle": "-|>", "color": "0.3", "lw": 1.2})
    ax.set_xlim(-0.7, (len(boxes) - 1) * 1.4 + 0.7)
    ax.set_ylim(-0.8, 0.8)
    ax.set_aspect("equal")


def plot_architecture(space: SearchSpace, genome: Genome, title: str, path: str | Path) -> None:
    """A picture of `space.describe(genome)`, drawn by the form describe() returns:

    - a dict of nodes {"node1": ["op~0"], "node2": ["op~0", "op~1"], ...}, each node's
      incoming edges as "op~source" (node0 the input, the last node the output):
      the cell as a DAG, an arrow per edge labelled with its operation (nb201);
    - a list of layer dicts ({"type": ..., "kernel": ..., ...}): the layers in
      order as boxes with their parameters, then the classification head (chain);
    - anything else: the architecture string as text.

    A new space gets a picture by returning one of the first two forms; the report
    never fails for the third."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    described = space.describe(genome)
    edges = _cell_edges(described)
    layers = described if isinstance(described, list) and described and all(
        isinstance(layer, dict) for layer in described) else None
    if edges:
        nodes = 1 + max(target for _, target, _ in edges)
        fig, ax = plt.subplots(figsize=(max(6.0, 2.2 * nodes), 1.2 + 0.75 * nodes), dpi=100)
        _draw_cell(ax, edges, _palette(space, [op for _, _, op in edges]))
    elif layers:
        # About an inch per box: equal aspect then leaves no blank band under the boxes.
        fig, ax = plt.subplots(figsize=(max(6.0, 1.4 * (len(layers) + 3) + 0.4), 2.4), dpi=100)
        _draw_layers(ax, layers, _palette(space, [str(layer.get("type")) for layer in layers]))
    else:
        text = "\n".join(textwrap.wrap(space.to_string(genome), 90)) or "(empty)"
        fig, ax = plt.subplots(figsize=(9, 1.2 + 0.25 * text.count("\n")), dpi=100)
        ax.text(0.5, 0.5, text, ha="center", va="center", family="monospace", fontsize=9)
    ax.axis("off")
    ax.set_title(title)
    fig.tight_layout()
    write_figure(path, fig)


def _informative(rows: Sequence[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """The rows grouped by position, in order, without positions where every candidate
    made the same choice (nothing to compare there: a chain's never-used slot)."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault(r["position"], []).append(r)
    return [group for group in groups.values() if sum(number(r["count"]) > 0 for r in group) > 1]


def plot_importance(rows: Sequence[dict[str, Any]], metric_label: str, title: str, path: str | Path) -> None:
    """Each choice's effect on the objective as a horizontal bar, its 90 % bootstrap
    interval as an error bar, grouped under a label per position, with the zero line
    (the position's average); blue bars raise the metric, red ones lower it. A choice
    no candidate had is listed in grey without a bar; a position where every candidate
    made the same choice is left out. No rows: a figure saying there were too few
    evaluated candidates."""
    groups = _informative(rows)
    if not groups:
        plot_note("too few evaluated candidates (or no choice that differs between them) "
                  "for operation importance", title, path)
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ticks, names, bold, bars = [], [], [], []
    y = 0
    for group in groups:
        ticks.append(y)
        names.append(group[0]["position"])
        bold.append(True)
        y += 1
        for r in group:
            ticks.append(y)
            names.append(f"{r['choice']}  (n={int(number(r['count']))})")
            bold.append(False)
            bars.append((y, r))
            y += 1
        y += 0.5
    height = y
    fig, ax = plt.subplots(figsize=(7.5, 1.3 + 0.24 * height), dpi=100)
    drawn = [(y, number(r["effect"]), number(r["low"]), number(r["high"])) for y, r in bars
             if math.isfinite(number(r["effect"]))]
    for y, r in bars:
        if not math.isfinite(number(r["effect"])):
            ax.text(0, y, "  not evaluated", va="center", fontsize=8, color="0.6")
    ys, effects, lows, highs = (np.array(column) for column in zip(*drawn))
    # One call each for every bar and every interval: a run's table has up to a few hundred rows.
    ax.barh(ys, effects, height=0.7, color=np.where(effects >= 0, "C0", "C3"), alpha=0.75)
    known = np.isfinite(lows) & np.isfinite(highs)
    ax.errorbar(effects[known], ys[known], xerr=[np.maximum(effects - lows, 0)[known],
                                                np.maximum(highs - effects, 0)[known]],
                fmt="none", ecolor="0.2", elinewidth=1, capsize=2.5)
    ax.axvline(0, color="0.3", lw=1)
    ax.set_yticks(ticks, names)
    counts = {y: number(r["count"]) for y, r in bars}
    for tick, text, is_position in zip(ticks, ax.get_yticklabels(), bold):
        if is_position:
            text.set_fontweight("bold")
        elif counts[tick] == 0:
            text.set_color("0.6")
        text.set_fontsize(9 if is_position else 8)
    ax.set_ylim(height - 0.2, -0.8)  # the first position on top
    ax.set_xlabel(f"effect on {metric_label} against the position's average (90 % bootstrap interval)")
    ax.set_title(title)
    ax.grid(axis="x", alpha=0.3)
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
        predictions = best_predictions(rdir, best)
        pictures = {"predictions": str(predictions)} if predictions is not None else {}
        write_yaml(layout.best(rdir), {**spec, "metrics": metrics, **pictures})
    else:
        write_yaml(layout.best(rdir), {"run": run["name"], "note": "no candidate finished with status ok"})
    title = f"{run['name']}: {run['strategy']['name']} on {run['space']['name']}"
    plot_progress(rows, objectives, title, layout.progress_plot(rdir))
    # Under one objective the front is the best candidate alone.
    front = pareto_rows(rows, objectives, constraints) if len(objectives) > 1 else [r for r in [best] if r is not None]
    write_tsv(layout.pareto_table(rdir), columns(run), front)
    plot_pareto(rows, objectives, front, title, layout.pareto_plot(rdir))
    write_interpretability(rdir, run, rows, best)
    write_overview(rdir, run, rows, generations)
    return summary


def write_interpretability(rdir: str | Path, run: dict[str, Any], rows: Sequence[dict[str, Any]],
                           best: dict[str, Any] | None) -> None:
    """importance.tsv and importance.png from the run's history; architecture.png of its best candidate."""
    space = make_space(run["space"])
    objectives = objectives_of(run)
    metric = primary(objectives)
    importance = run_importance(run, rows, space)
    write_tsv(layout.importance_table(rdir), IMPORTANCE_COLUMNS, importance)
    # The bars' colour is the effect's sign; the label says which sign is better.
    lower_better = ", lower is better" if objectives[0]["direction"] == "min" else ""
    plot_importance(importance, label(metric) + lower_better,
                    f"{run['name']}: what moved {metric} ({fitted(importance)} ok candidates)", layout.importance_plot(rdir))
    if best is None:
        plot_note("no candidate finished with status ok", f"{run['name']}: best architecture",
                  layout.architecture_plot(rdir))
    else:
        plot_architecture(space, evaluated(best, objectives).genome,
                          f"{run['name']}: best architecture ({metric} {number(best[metric]):g})",
                          layout.architecture_plot(rdir))


def write_overview(rdir: str | Path, run: dict[str, Any], rows: Sequence[dict[str, Any]], generations: int) -> None:
    """overview.html: the run's tables and best architecture as one page (the Snakemake report shows HTML)."""
    gens = list(range(generations))
    scan = RunScan(Path(rdir), settings=run, generations=gens, done=gens, rows=[table_row(r) for r in rows])
    atomic_write_text(layout.overview(rdir), overview_html(scan))
