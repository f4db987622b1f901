"""Regularized (aging) evolution, Real et al. 2019, batched per generation.

The population is a queue ordered by age. Each child is a mutation of the
fittest of `sample_size` members drawn at random; a generation's children join
the queue together and the oldest members leave it, whatever their fitness.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from nas.options import integer
from nas.spaces.base import SearchSpace
from nas.strategies.base import (
    Evaluated,
    Proposal,
    Strategy,
    StrategyError,
    known,
    population_from_state,
    selection_keys,
    state_with_population,
)
from nas.strategies.mutation import make_mutation, mutation_rate as resolved_rate
from nas.strategies.operators import tournament


class RegularizedEvolution(Strategy):
    name = "rea"

    def __init__(
        self,
        space: SearchSpace,
        population: int,
        sample_size: int = 3,
        mutation: str = "space",
        mutation_rate: float | None = None,
    ) -> None:
        super().__init__(space, population)
        self.sample_size = integer("rea", "sample_size", sample_size, 1, StrategyError)
        self.mutation, self.mutation_rate = mutation, resolved_rate("rea", space, mutation, mutation_rate)
        self.mutate = make_mutation(space, mutation, self.mutation_rate)

    def options(self) -> dict[str, Any]:
        return {"sample_size": self.sample_size, "mutation": self.mutation, "mutation_rate": self.mutation_rate}

    def propose(
        self, state: dict[str, Any], history: Sequence[Evaluated], n: int, rng: np.random.Generator
    ) -> list[Proposal]:
        members = population_from_state(state)
        if not members:
            return self.initial(n, history, rng)
        standing = selection_keys(members)

        def child(rng: np.random.Generator):
            parent = members[tournament(standing, self.sample_size, rng)]
            return self.mutate(parent.genome, rng), "mutation", (parent.key,)

        return self.fill(n, known(history), rng, child)

    def update(self, state: dict[str, Any], results: Sequence[Evaluated]) -> dict[str, Any]:
        queue = population_from_state(state) + list(results)
        return state_with_population(state, queue[-self.population :])
