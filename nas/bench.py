"""Strategy benchmark on a tabular benchmark: many seeds, in this process.

Each (strategy, seed) is a whole search run through nas.runner.run_in_process
with the table evaluator -- the same strategy code the workflow runs -- until
it has made `budget` distinct queries (look-ups of what is not cheap). The
problem is one of:

    best          one column to maximise (--metric), optionally under
                  constraints (--constraint): the best feasible value after
                  each query, against the table's best feasible one
    hypervolume   several columns (--objectives COL:max,COL:min) of one or more
                  tables joined on the architecture column, optionally under
                  constraints: the hypervolume of the feasible front found after
                  each query, as a ratio of the true front's (computed from the
                  whole table), every objective normalised by the true front's
                  ideal and nadir points, the reference point the nadir

Writes:

    DIR/curves.tsv   strategy, seed, queries, best_so_far | hypervolume_ratio
    DIR/summary.tsv  strategy, budget, mean, std, sem, regret  (at BUDGETS; regret:
                     the optimum, or a ratio of 1, less the mean)
    DIR/curves.png   mean +/- std anytime curves
"""

from __future__ import annotations

import math
import multiprocessing
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from threadpoolctl import threadpool_limits

from nas import layout
from nas.config import ConfigError, load_config, resolve_runs
from nas.evaluators.table import Table, table_for
from nas.io import write_figure, write_tsv
from nas.meta.knowledge import from_table
from nas.meta.model import MetaModel
from nas.objectives import (
    best_so_far,
    constraints_of,
    dominates,
    feasible,
    hypervolume,
    ideal_and_nadir,
    nondominated,
    normalised,
    register,
    values,
)
from nas.runner import run_in_process

BUDGETS = (10, 25, 30, 50, 100, 150, 300)
META_SUFFIX = "+meta"
# X+screen: run X screened by the bench config's `screen` (a predictor: free on a table).
SCREEN_SUFFIX = "+screen"
BENCH_CONFIG = Path(__file__).resolve().parents[1] / "config" / "bench.yaml"


@dataclass
class Problem:
    """What a benchmark's searches optimise, and how a search is scored."""

    evaluator: dict[str, Any]
    objectives: list[dict[str, str]]
    constraints: dict[str, dict[str, float]] = field(default_factory=dict)
    kind: str = "best"  # or "hypervolume"
    target: str = ""  # the column whose task features a warm start reads (best)
    optimum: float = math.nan  # best: the best feasible value; hypervolume: 1 (a ratio)
    worst: float = math.nan  # best: the worst feasible value, the score before any feasible query
    ideal: tuple[float, ...] = ()  # hypervolume: of the true front, signed
    nadir: tuple[float, ...] = ()
    true_hypervolume: float = math.nan

    @property
    def column(self) -> str:
        return "best_so_far" if self.kind == "best" else "hypervolume_ratio"

    def score(self, rows: Sequence[dict[str, Any]]) -> list[float]:
        """The search's value after each of its queries."""
        if self.kind == "best":
            curve = best_so_far(rows, self.objectives)
            return [self.worst if math.isnan(v) else v for v in curve]
        constraints = constraints_of({"constraints": self.constraints})
        front: list[tuple[float, ...]] = []
        out, hv = [], 0.0
        reference = [0.0] * len(self.objectives)
        for row in rows:
            if row.get("status") == "ok" and feasible(row, constraints):
                point = normalised([values(row, self.objectives)], self.ideal, self.nadir)[0]
                if not any(q == point or dominates(q, point) for q in front):
                    front = [q for q in front if not dominates(point, q)] + [point]
                    hv = hypervolume(front, reference)
            out.append(hv / self.true_hypervolume)
        return out


def _column_metric(column: str, direction: str) -> str:
    """A table column as a metric of its own name (the registry grows for a benchmark)."""
    register(column, direction, "", f"column {column} of a benchmark table")
    return column


def problem(tables: Sequence[str], arch_column: str, metric: str | None = None,
            objectives: Sequence[tuple[str, str]] = (), constraints: Sequence[tuple[str, str, float]] = (),
            cheap: Sequence[str] = ()) -> Problem:
    """The benchmark problem of the command line: `metric` (one column, maximised,
    the first form) or `objectives` [(column, max|min)], with `constraints`
    [(column, max|min, bound)], `cheap` columns known without a query."""
    if metric and not objectives:
        objectives = [(metric, "max")]
    if not objectives:
        raise ConfigError("bench needs --metric or --objectives")
    directions = dict(objectives)
    for column, bound, _ in constraints:
        directions.setdefault(column, "min" if bound == "max" else "max")
    names = {c: _column_metric(c, d) for c, d in directions.items()}
    bounds: dict[str, dict[str, float]] = {}
    for column, bound, value in constraints:
        bounds.setdefault(names[column], {})[bound] = float(value)
    if len(objectives) == 1 and not constraints and not cheap and len(tables) == 1:
        # The first form: what `make bench` has always run.
        column = objectives[0][0]
        evaluator = {"name": "table", "path": str(tables[0]), "arch_column": arch_column, "val_column": column,
                     "test_column": column}
        objectives_ = [{"metric": "val_acc", "direction": "max"}]
    else:
        evaluator = {"name": "table", "tables": [{"path": str(t), "arch_column": arch_column} for t in tables],
                     "columns": {names[c]: c for c in directions}, "cheap": [names[c] for c in cheap]}
        objectives_ = [{"metric": names[c], "direction": d} for c, d in objectives]
    made = Problem(evaluator, objectives_, bounds, "best" if len(objectives) == 1 else "hypervolume",
                   target=objectives[0][0])
    table = table_for(made.evaluator)
    rows = [table.metrics(a) for a in table.archs]
    constraints_ = constraints_of({"constraints": bounds})
    good = [r for r in rows if feasible(r, constraints_) and all(math.isfinite(v) for v in values(r, objectives_))]
    if not good:
        raise ConfigError("no architecture of the table meets the constraints")
    points = [values(r, objectives_) for r in good]
    if made.kind == "best":
        made.optimum, made.worst = max(p[0] for p in points), min(p[0] for p in points)
    else:
        front = [points[i] for i in nondominated(points)]
        made.ideal, made.nadir = ideal_and_nadir(front)
        made.true_hypervolume = hypervolume(normalised(front, made.ideal, made.nadir), [0.0] * len(objectives_))
        made.optimum = 1.0
    return made


# Set in the parent before the worker processes fork, so each shares them.
_RUNS: dict[str, dict[str, Any]] = {}
_TABLE: Table | None = None
_PROBLEM: Problem | None = None


def bench_runs(
    made: Problem, strategies: Sequence[str], config_path: str | Path = BENCH_CONFIG,
    meta_model: str | Path | None = None, features: dict[str, float] | None = None, ops: Sequence[str] = (),
) -> dict[str, dict[str, Any]]:
    """The bench config's runs named in `strategies`, on the problem's table.

    A strategy `X+meta` is run X warm-started from the meta-model in
    `meta_model`, with the bench config's `warm_start` settings and its
    `meta_screen`; `X+screen` (or `X+meta+screen`) is run X with the bench
    config's `screen` instead; `features`
    are the target column's declared task features; `ops`, when given, the
    space's operations in that order (a relabelling: each genome index means
    another operation, which a strategy should not notice)."""
    config = load_config(config_path)
    base = {s: s.removesuffix(SCREEN_SUFFIX).removesuffix(META_SUFFIX) for s in strategies}
    missing = [s for s in base.values() if s not in config["runs"]]
    if missing:
        raise ValueError(f"{config_path} has no run {missing[0]!r}; it has: {', '.join(config['runs'])}")
    warmed = {s for s in strategies if s.removesuffix(SCREEN_SUFFIX).endswith(META_SUFFIX)}
    if warmed and meta_model is None:
        raise ConfigError(f"strategies with {META_SUFFIX!r} need the knowledge of other columns (--meta-from)")
    defaults = {**(config.get("defaults") or {}), "evaluator": made.evaluator, "objectives": made.objectives}
    if made.constraints:
        defaults["constraints"] = made.constraints
    if features:
        defaults["task"] = {**(defaults.get("task") or {}), "features": dict(features)}
    if ops:
        defaults["space"] = {**(defaults.get("space") or {}), "ops": list(ops)}
    warm = {"warm_start": {**(config.get("warm_start") or {}), "model": str(meta_model)}}
    if config.get("meta_screen"):
        warm["screen"] = dict(config["meta_screen"])

    def variant(s: str) -> dict[str, Any]:
        run = {**config["runs"][base[s]], **(warm if s in warmed else {})}
        if s.endswith(SCREEN_SUFFIX):
            run["screen"] = dict(config["screen"])
        return run

    # Run names cannot hold '+': resolve under a stand-in, then key by the strategy's name.
    names = {s: s.replace("+", "_") for s in strategies}
    runs = {names[s]: variant(s) for s in strategies}
    resolved = resolve_runs({"defaults": defaults, "runs": runs})
    return {s: {**resolved[names[s]], "name": s} for s in strategies}


def build_meta_model(
    table: str, arch_column: str, columns: Sequence[str], features: dict[str, dict[str, float]],
    space: dict[str, Any], out: str | Path,
) -> Path:
    """Leave-one-task-out knowledge: a meta-model from the `columns` of the table only."""
    knowledge = from_table(table, arch_column, {c: features.get(c) for c in columns})
    out = Path(out)
    knowledge.write(out)
    MetaModel.build(knowledge, space).save(out)
    return out


def one_search(task: tuple[str, int, int]) -> tuple[str, int, list[float]]:
    """The problem's score after each distinct query of one search."""
    name, seed, budget = task
    assert _TABLE is not None and _PROBLEM is not None
    run = {**_RUNS[name], "seed": seed}
    rows = run_in_process(run, lambda spec: _TABLE.metrics(spec["arch"]), generations=10**9,
                          stop=lambda rows: len(rows) >= budget)[:budget]
    return name, seed, _PROBLEM.score(rows)


def _one_thread() -> None:
    # Each worker is one search at a time: torch's and OpenBLAS's own thread
    # pools would only fight the other workers for the cores (OpenBLAS's, forked
    # busy, made the predictor's solves of ls ten times slower with 2 workers).
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(1)
    threadpool_limits(1)


def run_bench(
    tables: Sequence[str] | str,
    metric: str | None,
    strategies: Sequence[str],
    seeds: int,
    budget: int,
    out: str | Path,
    arch_column: str = "ArchitectureString",
    jobs: int = 2,
    config_path: str | Path = BENCH_CONFIG,
    meta_from: Sequence[str] = (),
    task_features: dict[str, dict[str, float]] | None = None,
    objectives: Sequence[tuple[str, str]] = (),
    constraints: Sequence[tuple[str, str, float]] = (),
    cheap: Sequence[str] = (),
    ops: Sequence[str] = (),
) -> list[dict[str, Any]]:
    """`tables`: one or more, joined on `arch_column`; `metric` or `objectives`,
    `constraints` and `cheap` make the problem (see `problem`). `meta_from`:
    columns of the (first) table that are the knowledge of `+meta` strategies
    (never the target itself); `task_features`: column -> its declared task features;
    `ops`: the space's operations in another order (`bench_runs`)."""
    global _RUNS, _TABLE, _PROBLEM
    tables = [tables] if isinstance(tables, (str, Path)) else list(tables)
    task_features = task_features or {}
    _PROBLEM = problem(tables, arch_column, metric, objectives, constraints, cheap)
    model = None
    if meta_from:
        if _PROBLEM.kind != "best":
            raise ConfigError("--meta-from warm-starts single-objective searches; drop it or --objectives")
        if _PROBLEM.target in meta_from:
            raise ConfigError(f"--meta-from must not include the target column {_PROBLEM.target!r}")
        space = (load_config(config_path).get("defaults") or {}).get("space") or {"name": "nb201"}
        model = build_meta_model(tables[0], arch_column, meta_from, task_features, space, layout.bench_meta(out))
    _RUNS = bench_runs(_PROBLEM, strategies, config_path, model, task_features.get(_PROBLEM.target), ops)
    _TABLE = table_for(_PROBLEM.evaluator)
    for name in strategies:
        # A one-generation search pays the one-time import costs (torch's
        # optimizers, for reinforce) before the workers fork.
        one_search((name, 0, 1))
    tasks = [(name, seed, budget) for name in strategies for seed in range(seeds)]
    start = time.perf_counter()
    if jobs > 1:
        with multiprocessing.get_context("fork").Pool(jobs, initializer=_one_thread) as pool:
            results = pool.map(one_search, tasks, chunksize=max(1, len(tasks) // (jobs * 8)))
    else:
        results = [one_search(t) for t in tasks]
    seconds = time.perf_counter() - start

    out = Path(out)
    column = _PROBLEM.column
    curves = [
        {"strategy": name, "seed": seed, "queries": q + 1, column: round(v, 4)}
        for name, seed, curve in results
        for q, v in enumerate(curve)
    ]
    write_tsv(layout.bench_curves(out), ("strategy", "seed", "queries", column), curves)
    summary = []
    for name in strategies:
        matrix = np.array([c for n, _, c in results if n == name])
        for b in [b for b in BUDGETS if b <= budget] or [budget]:
            at = matrix[:, b - 1]
            summary.append({"strategy": name, "budget": b, "mean": round(float(at.mean()), 4),
                            "std": round(float(at.std()), 4),
                            "sem": round(float(at.std(ddof=1) / math.sqrt(len(at))) if len(at) > 1 else 0.0, 4),
                            "regret": round(float(_PROBLEM.optimum - at.mean()), 4)})
    write_tsv(layout.bench_summary(out), ("strategy", "budget", "mean", "std", "sem", "regret"), summary)
    label = _PROBLEM.objectives[0]["metric"] if _PROBLEM.kind == "best" else "hypervolume ratio"
    _plot(results, strategies, metric or label, _PROBLEM.optimum, layout.bench_plot(out), _PROBLEM.kind)
    print(f"{len(tasks)} searches of {budget} queries in {seconds:.1f} s ({jobs} processes); "
          f"optimum {_PROBLEM.optimum:.4f}")
    return summary


def _plot(results, strategies: Sequence[str], metric: str, optimum: float, path: Path, kind: str = "best") -> None:

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=100)
    lows = []
    for i, name in enumerate(strategies):
        matrix = np.array([c for n, _, c in results if n == name])
        mean, std = matrix.mean(0), matrix.std(0)
        x = np.arange(1, matrix.shape[1] + 1)
        ax.plot(x, mean, color=f"C{i}", label=f"{name} ({len(matrix)} seeds)")
        ax.fill_between(x, mean - std, mean + std, color=f"C{i}", alpha=0.15)
        lows.append(mean[min(len(mean) - 1, 9)])
    ax.axhline(optimum, color="k", ls="--", lw=1, label=f"optimum {optimum:.2f}")
    if kind == "best":
        ax.set_ylim(min(lows) - 0.5, optimum + 0.2)
        ax.set_ylabel(f"best {metric} so far (mean ± std)")
    else:
        ax.set_ylim(max(0.0, min(lows) - 0.05), optimum + 0.01)
        ax.set_ylabel("hypervolume of the front found / true front's (mean ± std)")
    ax.set_xlabel("distinct queries")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    write_figure(path, fig)
