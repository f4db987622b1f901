"""Strategy benchmark on a tabular benchmark: many seeds, in this process.

Each (strategy, seed) is a whole search run through nas.search.run_in_process
with the table evaluator -- the same strategy code the workflow runs -- until
it has made `budget` distinct queries. Writes:

    DIR/curves.tsv   strategy, seed, queries, best_so_far
    DIR/summary.tsv  strategy, budget, mean, std, regret  (at BUDGETS)
    DIR/curves.png   mean +/- std anytime curves
"""

from __future__ import annotations

import multiprocessing
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from nas import layout
from nas.config import ConfigError, load_config, resolve_runs
from nas.evaluators.table import Table, table_for
from nas.io import write_figure, write_tsv
from nas.meta.knowledge import from_table
from nas.meta.model import MetaModel
from nas.objectives import best_so_far, objectives_of
from nas.runner import run_in_process

BUDGETS = (10, 25, 30, 50, 100, 150, 300)
META_SUFFIX = "+meta"
BENCH_CONFIG = Path(__file__).resolve().parents[1] / "config" / "bench.yaml"

# Set in the parent before the worker processes fork, so each shares them.
_RUNS: dict[str, dict[str, Any]] = {}
_TABLE: Table | None = None


def bench_runs(
    table: str, metric: str, arch_column: str, strategies: Sequence[str], config_path: str | Path = BENCH_CONFIG,
    meta_model: str | Path | None = None, features: dict[str, float] | None = None,
) -> dict[str, dict[str, Any]]:
    """The bench config's runs named in `strategies`, evaluated on the table.

    A strategy `X+meta` is run X warm-started from the meta-model in
    `meta_model`, with the bench config's `warm_start` settings; `features`
    are the target column's declared task features."""
    config = load_config(config_path)
    base = {s: s.removesuffix(META_SUFFIX) for s in strategies}
    missing = [s for s in base.values() if s not in config["runs"]]
    if missing:
        raise ValueError(f"{config_path} has no run {missing[0]!r}; it has: {', '.join(config['runs'])}")
    if any(s.endswith(META_SUFFIX) for s in strategies) and meta_model is None:
        raise ConfigError(f"strategies ending in {META_SUFFIX!r} need the knowledge of other columns (--meta-from)")
    evaluator = {"name": "table", "path": str(table), "arch_column": arch_column, "val_column": metric,
                 "test_column": metric}
    defaults = {**(config.get("defaults") or {}), "evaluator": evaluator}
    if features:
        defaults["task"] = {**(defaults.get("task") or {}), "features": dict(features)}
    warm = {**(config.get("warm_start") or {}), "model": str(meta_model)}
    # Run names cannot hold '+': resolve under a stand-in, then key by the strategy's name.
    names = {s: s.replace(META_SUFFIX, "_meta") for s in strategies}
    runs = {names[s]: {**config["runs"][base[s]], **({"warm_start": warm} if s != base[s] else {})}
            for s in strategies}
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
    """Best metric after each distinct query of one search."""
    name, seed, budget = task
    assert _TABLE is not None
    run = {**_RUNS[name], "seed": seed}
    rows = run_in_process(run, lambda spec: _TABLE.metrics(spec["arch"]), generations=10**9,
                          stop=lambda rows: len(rows) >= budget)[:budget]
    return name, seed, best_so_far(rows, objectives_of(run))


def _one_thread() -> None:
    # Each worker is one search at a time: torch's own thread pool would only
    # fight the other workers for the cores.
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(1)


def run_bench(
    table: str,
    metric: str,
    strategies: Sequence[str],
    seeds: int,
    budget: int,
    out: str | Path,
    arch_column: str = "ArchitectureString",
    jobs: int = 2,
    config_path: str | Path = BENCH_CONFIG,
    meta_from: Sequence[str] = (),
    task_features: dict[str, dict[str, float]] | None = None,
) -> list[dict[str, Any]]:
    """`meta_from`: columns of the table that are the knowledge of `+meta`
    strategies (never the metric itself); `task_features`: column -> its
    declared task features."""
    global _RUNS, _TABLE
    task_features = task_features or {}
    model = None
    if meta_from:
        if metric in meta_from:
            raise ConfigError(f"--meta-from must not include the target column {metric!r}")
        space = (load_config(config_path).get("defaults") or {}).get("space") or {"name": "nb201"}
        model = build_meta_model(table, arch_column, meta_from, task_features, space, layout.bench_meta(out))
    _RUNS = bench_runs(table, metric, arch_column, strategies, config_path, model, task_features.get(metric))
    _TABLE = table_for(next(iter(_RUNS.values()))["evaluator"])
    optimum = max(_TABLE.val.values())
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
    curves = [
        {"strategy": name, "seed": seed, "queries": q + 1, "best_so_far": round(v, 4)}
        for name, seed, curve in results
        for q, v in enumerate(curve)
    ]
    write_tsv(layout.bench_curves(out), ("strategy", "seed", "queries", "best_so_far"), curves)
    summary = []
    for name in strategies:
        matrix = np.array([c for n, _, c in results if n == name])
        for b in [b for b in BUDGETS if b <= budget] or [budget]:
            at = matrix[:, b - 1]
            summary.append({"strategy": name, "budget": b, "mean": round(float(at.mean()), 4),
                            "std": round(float(at.std()), 4), "regret": round(float(optimum - at.mean()), 4)})
    write_tsv(layout.bench_summary(out), ("strategy", "budget", "mean", "std", "regret"), summary)
    _plot(results, strategies, metric, optimum, layout.bench_plot(out))
    print(f"{len(tasks)} searches of {budget} queries in {seconds:.1f} s ({jobs} processes); optimum {optimum:.4f}")
    return summary


def _plot(results, strategies: Sequence[str], metric: str, optimum: float, path: Path) -> None:

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
    ax.set_ylim(min(lows) - 0.5, optimum + 0.2)
    ax.set_xlabel("distinct queries")
    ax.set_ylabel(f"best {metric} so far (mean ± std)")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    write_figure(path, fig)
