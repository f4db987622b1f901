"""The mutation a strategy applies, chosen by name in the config."""

from __future__ import annotations

from typing import Callable

import numpy as np

from nas.options import choice, number
from nas.spaces.base import Genome, SearchSpace
from nas.strategies.base import StrategyError
from nas.strategies.operators import resample_genes, swap_genes

Mutation = Callable[[Genome, np.random.Generator], Genome]
MUTATIONS = ("bitflip", "swap", "space")


def mutation_rate(owner: str, space: SearchSpace, kind: str, rate: float | None) -> float:
    """The rate a mutation uses: `rate`, or its kind's default (bitflip: 1/genes
    per gene; swap and space: 1 per child). `owner` is the strategy, for messages."""
    choice(owner, "mutation", kind, MUTATIONS, StrategyError)
    if rate is not None:
        return number(owner, "mutation_rate", rate, lambda v: 0 <= v <= 1, "in [0, 1]", StrategyError)
    return 1.0 / len(space.cardinalities()) if kind == "bitflip" else 1.0


def make_mutation(space: SearchSpace, kind: str, rate: float | None) -> Mutation:
    """bitflip: each gene resampled with probability `rate` (default 1/genes);
    swap: two genes exchange values, with probability `rate` (default 1);
    space: the space's own smallest edit (for chains: add, remove or change a
    layer), with probability `rate` (default 1)."""
    cards = space.cardinalities()
    rate = mutation_rate("mutation", space, kind, rate)
    if kind == "bitflip":
        return lambda g, rng: resample_genes(g, cards, rate, rng)
    if kind == "swap":
        return lambda g, rng: swap_genes(g, cards, rng) if rng.random() < rate else tuple(g)
    return lambda g, rng: space.mutate(g, rng) if rng.random() < rate else tuple(g)
