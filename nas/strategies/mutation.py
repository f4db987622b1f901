"""The mutation a strategy applies, chosen by name in the config."""

from __future__ import annotations

from typing import Callable

import numpy as np

from nas.spaces.base import Genome, SearchSpace
from nas.strategies.base import StrategyError
from nas.strategies.operators import resample_genes, swap_genes

Mutation = Callable[[Genome, np.random.Generator], Genome]
MUTATIONS = ("bitflip", "swap", "space")


def make_mutation(space: SearchSpace, kind: str, rate: float | None) -> Mutation:
    """bitflip: each gene resampled with probability `rate` (default 1/genes);
    swap: two genes exchange values, with probability `rate` (default 1);
    space: the space's own smallest edit (for chains: add, remove or change a
    layer), with probability `rate` (default 1)."""
    cards = space.cardinalities()
    if kind == "bitflip":
        per_gene = 1.0 / len(cards) if rate is None else rate
        return lambda g, rng: resample_genes(g, cards, per_gene, rng)
    per_child = 1.0 if rate is None else rate
    if kind == "swap":
        return lambda g, rng: swap_genes(g, cards, rng) if rng.random() < per_child else tuple(g)
    if kind == "space":
        return lambda g, rng: space.mutate(g, rng) if rng.random() < per_child else tuple(g)
    raise StrategyError(f"unknown mutation {kind!r}; choose one of: {', '.join(MUTATIONS)}")
