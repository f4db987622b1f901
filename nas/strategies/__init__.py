"""Search strategies by name. Importing this stays torch-free."""

from __future__ import annotations

from typing import Any

from nas.spaces.base import SearchSpace
from nas.strategies.base import Evaluated, Proposal, Strategy, StrategyError
from nas.strategies.evolution import RegularizedEvolution
from nas.strategies.genetic import GeneticAlgorithm
from nas.strategies.local_search import LocalSearch
from nas.strategies.random_search import RandomSearch

STRATEGIES: dict[str, type[Strategy]] = {
    "random": RandomSearch,
    "ga": GeneticAlgorithm,
    "rea": RegularizedEvolution,
    "ls": LocalSearch,
}


def make_strategy(cfg: dict[str, Any], space: SearchSpace, population: int) -> Strategy:
    """Build a strategy from its config section: {'name': ..., **options}."""
    options = dict(cfg)
    name = options.pop("name")
    if name not in STRATEGIES:
        raise StrategyError(f"unknown strategy {name!r}; choose one of: {', '.join(sorted(STRATEGIES))}")
    try:
        return STRATEGIES[name](space, population, **options)
    except TypeError as e:  # an option the strategy does not take
        raise StrategyError(f"strategy {name!r}: {e}") from None


__all__ = ["STRATEGIES", "Evaluated", "Proposal", "Strategy", "StrategyError", "make_strategy"]
