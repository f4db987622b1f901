"""One generation of a search, without files: propose specs, aggregate results.

The workflow steps (nas/steps.py) wrap these with reads and writes; the
in-process loop (nas/runner.py) calls them directly. Both therefore run the
same code and draw the same random numbers for the same run settings. The
caller builds the run's strategy (nas.runner.strategy_for) and hands it in.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any, Mapping, Sequence

from nas import layout
from nas.config import candidates_in, proposals_in, screen_proxy
from nas.evaluators import evaluator_for
from nas.evaluators.proxy import proxy_metric, score
from nas.objectives import MEASURED, Constraint, Objective, constraints_of, objectives_of, values, violation
from nas.seeding import int_seed, rng_for
from nas.strategies import Evaluated, Strategy
from nas.strategies.base import best_first

# Columns of a generation table before and after the evaluator's own (nas.evaluators.base).
LEADING_COLUMNS = ("run", "generation", "candidate", "arch")
TRAILING_COLUMNS = ("origin", "parents", "genome", "seed")


def columns(run: Mapping[str, Any]) -> tuple[str, ...]:
    """Columns of the run's generation tables and history.tsv, in order."""
    return (*LEADING_COLUMNS, *evaluator_for(run).table_columns, *TRAILING_COLUMNS)


def propose(
    run: dict[str, Any],
    generation: int,
    state: dict[str, Any],
    history: Sequence[Evaluated],
    strategy: Strategy,
) -> list[dict[str, Any]]:
    """The candidate specs of one generation; each is everything needed to train it.

    With a screen by a zero-cost proxy (`screen: {by: zc_<proxy>}`) they are the
    generation's proposals instead, `proposals_in(run, generation)` of them, named
    p000, p001, ...: `screen` keeps the candidates among them.
    `strategy` is the run's strategy (nas.runner.strategy_for(run))."""
    rng = rng_for(run["seed"], generation, "propose")
    pooled = screen_proxy(run) is not None
    proposals = strategy.proposals(state, history, proposals_in(run, generation), rng)
    return [
        {
            "run": run["name"],
            "generation": generation,
            "candidate": layout.proposal_name(i) if pooled else layout.cand_name(i),
            "arch": p.arch,
            "genome": list(p.genome),
            "origin": p.origin,
            "parents": list(p.parents),
            **({"trace": p.trace} if p.trace is not None else {}),
            "seed": int_seed(run["seed"], generation, SCREEN_STEP if pooled else "train", i),
            "run_seed": run["seed"],
            "space": run["space"],
            "task": run["task"],
            "training": run["training"],
            "evaluator": run["evaluator"],
        }
        for i, p in enumerate(proposals)
    ]


# The step whose seeds initialise the networks a proxy screen scores.
SCREEN_STEP = "screen"


def screen_scores(run: Mapping[str, Any], proposals: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The screen's proxy of each proposal (its metrics: zc_<proxy>, params, flops,
    status, seconds), the networks initialised by the proposals' seeds."""
    proxy = screen_proxy(run)
    assert proxy is not None, "the run has no screen by a proxy"
    task = evaluator_for(run).data_task()
    return [e.metrics for e in score(proposals, task, [proxy], run["screen"]["batch_size"])]


def screen(run: Mapping[str, Any], generation: int, proposals: Sequence[dict[str, Any]],
           scores: Sequence[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The generation's candidate specs: the `candidates_in` proposals with the largest
    proxy (best first, ties in proposal order; a failed score last), each renamed and
    seeded as an unscreened candidate of its place would be; and one row per
    proposal for the screen table (layout.screen_table)."""
    metric = proxy_metric(screen_proxy(run) or "")
    values = [float(m.get(metric)) if m.get("status") == "ok" and m.get(metric) is not None else math.nan
              for m in scores]
    kept = best_first(values, candidates_in(run, generation))
    specs = []
    for place, i in enumerate(kept):
        spec = dict(proposals[i])
        spec.update(candidate=layout.cand_name(place), seed=int_seed(run["seed"], generation, "train", place),
                    screened={"proposal": proposals[i]["candidate"], metric: _value(values[i])})
        specs.append(spec)
    chosen = {i: place for place, i in enumerate(kept)}
    rows = [{"proposal": p["candidate"], "arch": p["arch"], "origin": p["origin"], metric: _value(v),
             "status": m.get("status"), "seconds": m.get("train_seconds"),
             "candidate": layout.cand_name(chosen[i]) if i in chosen else None}
            for i, (p, v, m) in enumerate(zip(proposals, values, scores, strict=True))]
    return specs, rows


def screen_columns(run: Mapping[str, Any]) -> tuple[str, ...]:
    """The columns of a generation's screen table."""
    return ("proposal", "arch", "origin", proxy_metric(screen_proxy(run) or ""), "status", "seconds", "candidate")


def evaluated(row: Mapping[str, Any], objectives: Sequence[Objective],
              constraints: Sequence[Constraint] = ()) -> Evaluated:
    """A table row (values as written or as read back) as the strategy sees it."""
    genome = row["genome"]
    if isinstance(genome, str):
        genome = [int(g) for g in genome.split(",")]
    key = f"{layout.gen_name(int(row['generation']))}/{row['candidate']}"
    signed = values(row, objectives)
    broken = violation(row, constraints) if constraints and row.get("status") in MEASURED else 0.0
    return Evaluated(key, row["arch"], tuple(int(g) for g in genome), signed[0], values=signed, violation=broken)


def table_rows(specs: Sequence[dict[str, Any]], metrics: Sequence[dict[str, Any]],
               columns: Sequence[str], constraints: Sequence[Constraint] = ()) -> list[dict[str, Any]]:
    """One row per candidate; a measured one that breaks a constraint gets status `infeasible`."""
    rows = []
    for spec, m in zip(specs, metrics, strict=True):
        row = {k: spec.get(k) for k in ("run", "generation", "candidate", "arch", "origin", "seed")}
        row.update({k: _value(m.get(k)) for k in columns if k in m})
        if constraints and row.get("status") == "ok" and violation(row, constraints) > 0:
            row["status"] = "infeasible"
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
    strategy: Strategy,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The generation's table rows and the strategy state after it."""
    constraints = constraints_of(run)
    rows = table_rows(specs, metrics, columns(run), constraints)
    objectives = objectives_of(run)
    results = [replace(evaluated(r, objectives, constraints), trace=s.get("trace")) for r, s in zip(rows, specs)]
    return rows, strategy.update(state, results)
