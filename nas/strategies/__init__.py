"""Search strategies by name.

Importing this stays torch-free: a strategy's module is imported when a run
asks for it, so only runs that use `reinforce` pay for importing torch.
"""

from __future__ import annotations

from typing import Any

from nas.registry import lookup
from nas.spaces.base import SearchSpace
from nas.strategies.base import Evaluated, Proposal, Strategy, StrategyError

STRATEGIES: dict[str, str] = {
    "random": "nas.strategies.random_search:RandomSearch",
    "ga": "nas.strategies.genetic:GeneticAlgorithm",
    "rea": "nas.strategies.evolution:RegularizedEvolution",
    "ls": "nas.strategies.local_search:LocalSearch",
    "reinforce": "nas.strategies.reinforce:Reinforce",
    "nsga2": "nas.strategies.nsga2:NSGA2",
    "bananas": "nas.strategies.bananas:Bananas",
}


def strategy_class(name: Any) -> type[Strategy]:
    return lookup(STRATEGIES, "strategy", name, StrategyError)


def make_strategy(cfg: dict[str, Any], space: SearchSpace, population: int) -> Strategy:
    """Build a strategy from its config section: {'name': ..., **options}."""
    options = dict(cfg)
    name = options.pop("name")
    try:
        return strategy_class(name)(space, population, **options)
    except TypeError as e:  # an option the strategy does not take
        raise StrategyError(f"strategy {name!r}: {e}") from None


__all__ = ["STRATEGIES", "Evaluated", "Proposal", "Strategy", "StrategyError", "make_strategy", "strategy_class"]
