"""One generation of a search, without files: propose specs, aggregate results.

The workflow steps (nas/steps.py) wrap these with reads and writes; the
in-process loop below calls them directly. Both therefore run the same code
and draw the same random numbers for the same run settings.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any, Callable, Sequence

from nas import layout
from nas.config import candidates_in
from nas.evaluators import METRIC_KEYS
from nas.seeding import int_seed, rng_for
from nas.spaces import make_space
from nas.strategies import Evaluated, Strategy, make_strategy

# Columns of a generation table and of history.tsv, in order.
COLUMNS = ("run", "generation", "candidate", "arch", *METRIC_KEYS, "origin", "parents", "genome", "seed")


def strategy_for(run: dict[str, Any]) -> Strategy:
    space = make_space(run["space"])
    strategy = make_strategy(run["strategy"], space, run["population"])
    if run.get("warm_start"):
        from nas.meta.warm import apply

        apply(strategy, run)
    return strategy


def propose(
    run: dict[str, Any],
    generation: int,
    state: dict[str, Any],
    history: Sequence[Evaluated],
    strategy: Strategy | None = None,
) -> list[dict[str, Any]]:
    """The candidate specs of one generation; each is everything needed to train it.

    `strategy` is the run's strategy when the caller keeps one (saves
    rebuilding it every generation); it must be strategy_for(run)."""
    strategy = strategy or strategy_for(run)
    rng = rng_for(run["seed"], generation, "propose")
    proposals = strategy.proposals(state, history, candidates_in(run, generation), rng)
    return [
        {
            "run": run["name"],
            "generation": generation,
            "candidate": layout.cand_name(i),
            "arch": p.arch,
            "genome": list(p.genome),
            "origin": p.origin,
            "parents": list(p.parents),
            **({"trace": p.trace} if p.trace is not None else {}),
            "seed": int_seed(run["seed"], generation, "train", i),
            "run_seed": run["seed"],
            "space": run["space"],
            "task": run["task"],
            "training": run["training"],
            "evaluator": run["evaluator"],
        }
        for i, p in enumerate(proposals)
    ]


def fitness(row: dict[str, Any]) -> float:
    """What selection maximises: validation accuracy, worst for a failed candidate."""
    if row.get("status") != "ok" or row.get("val_acc") in (None, ""):
        return -math.inf
    value = float(row["val_acc"])
    return value if math.isfinite(value) else -math.inf


def evaluated(row: dict[str, Any]) -> Evaluated:
    """A table row (values as written or as read back) as the strategy sees it."""
    genome = row["genome"]
    if isinstance(genome, str):
        genome = [int(g) for g in genome.split(",")]
    key = f"{layout.gen_name(int(row['generation']))}/{row['candidate']}"
    return Evaluated(key, row["arch"], tuple(int(g) for g in genome), fitness(row))


def table_rows(specs: Sequence[dict[str, Any]], metrics: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for spec, m in zip(specs, metrics, strict=True):
        row = {k: spec.get(k) for k in ("run", "generation", "candidate", "arch", "origin", "seed")}
        row.update({k: _value(m.get(k)) for k in COLUMNS if k in m})
        row["parents"] = ",".join(spec.get("parents", []))
        row["genome"] = list(spec["genome"])
        rows.append(row)
    return rows


def _value(v: Any) -> Any:
    """No value and NaN look alike in a table (an empty cell): JSON has no NaN."""
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else v


def aggregate(
    run: dict[str, Any],
    state: dict[str, Any],
    specs: Sequence[dict[str, Any]],
    metrics: Sequence[dict[str, Any]],
    strategy: Strategy | None = None,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The generation's table rows and the strategy state after it."""
    rows = table_rows(specs, metrics)
    results = [replace(evaluated(r), trace=s.get("trace")) for r, s in zip(rows, specs)]
    return rows, (strategy or strategy_for(run)).update(state, results)


def run_in_process(
    run: dict[str, Any],
    evaluate: Callable[[dict[str, Any]], dict[str, Any]],
    generations: int | None = None,
    stop: Callable[[list[dict[str, Any]]], bool] | None = None,
) -> list[dict[str, Any]]:
    """The whole search in this process: the rows of every generation, in order.

    `stop(history_rows)` may end it early (a benchmark's query budget).
    """
    strategy = strategy_for(run)
    state = strategy.initial_state()
    history: list[Evaluated] = []
    rows_all: list[dict[str, Any]] = []
    for g in range(run["generations"] if generations is None else generations):
        specs = propose(run, g, state, history, strategy)
        rows, state = aggregate(run, state, specs, [evaluate(s) for s in specs], strategy)
        rows_all.extend(rows)
        history.extend(evaluated(r) for r in rows)
        if stop is not None and stop(rows_all):
            break
    return rows_all
