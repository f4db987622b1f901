"""Generational genetic algorithm with elitism.

Generation 0 is `population` random architectures. Each later generation
breeds `n` children: parents picked by tournament or roulette selection,
recombined by single- or multi-point crossover with probability
`crossover_rate`, then mutated. The next population is the `elitism` fittest
of the old one plus the fittest children (topped up from the old population
when there are fewer children than places).
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from nas.options import choice, integer, number
from nas.spaces.base import SearchSpace
from nas.strategies.base import (
    Evaluated,
    Proposal,
    Strategy,
    StrategyError,
    fittest,
    known,
    population_from_state,
    selection_keys,
    state_with_population,
)
from nas.strategies.mutation import make_mutation, mutation_rate as resolved_rate
from nas.strategies.operators import multi_point_crossover, roulette, tournament

SELECTIONS = ("tournament", "roulette")
CROSSOVERS = ("single_point", "multi_point", "none")


class GeneticAlgorithm(Strategy):
    name = "ga"

    def __init__(
        self,
        space: SearchSpace,
        population: int,
        selection: str = "tournament",
        tournament_size: int = 3,
        crossover: str = "single_point",
        crossover_points: int = 2,
        crossover_rate: float = 0.9,
        mutation: str = "bitflip",
        mutation_rate: float | None = None,
        elitism: int = 1,
    ) -> None:
        super().__init__(space, population)
        choice("ga", "selection", selection, SELECTIONS, StrategyError)
        choice("ga", "crossover", crossover, CROSSOVERS, StrategyError)
        integer("ga", "tournament_size", tournament_size, 1, StrategyError)
        integer("ga", "crossover_points", crossover_points, 1, StrategyError)
        number("ga", "crossover_rate", crossover_rate, lambda v: 0 <= v <= 1, "in [0, 1]", StrategyError)
        if integer("ga", "elitism", elitism, 0, StrategyError) >= population:
            raise StrategyError(f"ga option elitism={elitism!r}: must be below the population ({population})")
        self.selection = selection
        self.tournament_size = tournament_size
        self.mutation, self.mutation_rate = mutation, resolved_rate("ga", space, mutation, mutation_rate)
        self.mutate = make_mutation(space, mutation, self.mutation_rate)
        self.elitism = elitism
        self._options = {
            "selection": selection, "tournament_size": tournament_size, "crossover": crossover,
            "crossover_points": crossover_points, "crossover_rate": crossover_rate, "mutation": mutation,
            "mutation_rate": self.mutation_rate, "elitism": elitism,
        }
        # What the operators use: one cut for single_point, none at all for `none`.
        self.crossover_points = 1 if crossover == "single_point" else crossover_points
        self.crossover_rate = 0.0 if crossover == "none" else crossover_rate

    def options(self) -> dict[str, Any]:
        return dict(self._options)

    def _select(self, standing: list[tuple[float, float]], rng: np.random.Generator) -> int:
        if self.selection == "tournament":
            return tournament(standing, self.tournament_size, rng)
        # Roulette weighs a number: the fitness of a feasible member under one
        # objective (others get no weight), the negated front index under several.
        weights = [s[1] if s[0] == 0 else -math.inf for s in standing] if len(self.objectives) <= 1 \
            else [s[0] for s in standing]
        return roulette(weights, rng)

    def propose(
        self, state: dict[str, Any], history: Sequence[Evaluated], n: int, rng: np.random.Generator
    ) -> list[Proposal]:
        parents = population_from_state(state)
        if not parents:
            return self.initial(n, history, rng)
        standing = selection_keys(parents)
        cut_points = self.space.cut_points()

        def breed(rng: np.random.Generator):
            a = parents[self._select(standing, rng)]
            b = parents[self._select(standing, rng)]
            if rng.random() < self.crossover_rate:
                child = multi_point_crossover(a.genome, b.genome, self.crossover_points, rng, cut_points)[0]
                origin, keys = "crossover", (a.key, b.key)
            else:
                child, origin, keys = a.genome, "copy", (a.key,)
            mutated = self.mutate(child, rng)
            if mutated != child:
                origin = "mutation" if origin == "copy" else "crossover+mutation"
            return mutated, origin, keys

        return self.fill(n, known(history), rng, breed)

    def update(self, state: dict[str, Any], results: Sequence[Evaluated]) -> dict[str, Any]:
        old = population_from_state(state)
        elites = fittest(old, self.elitism)
        survivors = elites + fittest(results, self.population - len(elites))
        if len(survivors) < self.population:
            rest = [m for m in old if m not in elites]
            survivors += fittest(rest, self.population - len(survivors))
        return state_with_population(state, survivors)
