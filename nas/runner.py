"""The composition root: a run's strategy, warm-started when it says so, and
the whole search in one process.

It sits above the search loop (nas/search.py) and the meta-learning add-on
(nas/meta/): the loop knows neither how a strategy is assembled nor that
meta-models exist, and the add-on never calls back into the loop.
"""

from __future__ import annotations

import functools
from typing import Any, Callable

from nas import search
from nas.config import screen_proxy
from nas.evaluators import evaluator_for
from nas.evaluators.repeats import evaluate_repeated
from nas.meta.warm import apply
from nas.objectives import constraints_of, describe_constraints, objectives_of
from nas.spaces import make_space
from nas.strategies import Evaluated, Strategy, make_strategy
from nas.strategies.base import Screen
from nas.strategies.predictor import predictor_score


def strategy_for(run: dict[str, Any]) -> Strategy:
    """The run's strategy on its space, with its objectives, the predicate of its
    cheap constraints (met by every proposal) and its warm start when it has one."""
    space = make_space(run["space"])
    strategy = make_strategy(run["strategy"], space, run["population"])
    strategy.objectives = objectives_of(run)
    evaluator = evaluator_for(run)
    strategy.constraints = constraints_of(run)
    if evaluator.cheap_metrics:
        strategy.cheap = functools.partial(evaluator.cheap_values, space)
    strategy.feasible = evaluator.cheap_feasible(space, strategy.constraints)
    if strategy.feasible is not None:
        strategy.feasibility = describe_constraints(evaluator.cheap_constraints(strategy.constraints))
    strategy = apply(strategy, run)
    strategy.screen = _screen(strategy, run)
    return strategy


def _screen(strategy: Strategy, run: dict[str, Any]) -> Screen | None:
    """The run's screen when it runs inside propose (by the meta-model or a
    predictor); a screen by a proxy is a step of its own (nas.search.screen)."""
    cfg = run.get("screen")
    if not cfg or screen_proxy(run):
        return None
    if cfg["by"] == "meta":
        warm = strategy.warm
        assert warm is not None and warm.score is not None, "screen by meta needs a warm start (nas.config checks)"
        return Screen(cfg["keep"], lambda genomes, _history, _rng: warm.score(genomes))
    return Screen(cfg["keep"], predictor_score(strategy.space))


def run_in_process(
    run: dict[str, Any],
    evaluate: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    generations: int | None = None,
    stop: Callable[[list[dict[str, Any]]], bool] | None = None,
) -> list[dict[str, Any]]:
    """The whole search in this process: the rows of every generation, in order.

    `evaluate(spec) -> metrics` defaults to the run's evaluator; `stop(history_rows)`
    may end the search early (a benchmark's query budget).
    """
    if evaluate is None:
        evaluator = evaluator_for(run)

        def evaluate(spec: dict[str, Any]) -> dict[str, Any]:
            return evaluate_repeated(evaluator, spec).metrics

    strategy = strategy_for(run)
    objectives, constraints = objectives_of(run), constraints_of(run)
    state = strategy.initial_state()
    history: list[Evaluated] = []
    rows_all: list[dict[str, Any]] = []
    for g in range(run["generations"] if generations is None else generations):
        specs = search.propose(run, g, state, history, strategy)
        if screen_proxy(run):
            specs, _ = search.screen(run, g, specs, search.screen_scores(run, specs))
        rows, state = search.aggregate(run, state, specs, [evaluate(s) for s in specs], strategy)
        rows_all.extend(rows)
        history.extend(search.evaluated(r, objectives, constraints) for r in rows)
        if stop is not None and stop(rows_all):
            break
    return rows_all
