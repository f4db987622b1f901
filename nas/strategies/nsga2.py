"""NSGA-II, Deb, Pratap, Agarwal & Meyarivan 2002 ("A fast and elitist
multiobjective genetic algorithm: NSGA-II"), batched per generation.

Parents are picked by binary tournaments on (front index, crowding distance)
of constrained non-dominated sorting (Deb 2000: feasible before infeasible,
smaller violation first); children are recombined and mutated with the
genetic algorithm's operators; the next population is the best `population`
of parents and children together (whole fronts, the last one cut by crowding
distance). With one objective it is a (mu + lambda) genetic algorithm.
"""

from __future__ import annotations

from typing import Any, Sequence

from nas.spaces.base import SearchSpace
from nas.strategies.base import Evaluated, population_from_state, state_with_population
from nas.strategies.genetic import GeneticAlgorithm
from nas.strategies.operators import nsga2_select


class NSGA2(GeneticAlgorithm):
    name = "nsga2"

    def __init__(
        self,
        space: SearchSpace,
        population: int,
        tournament_size: int = 2,
        crossover: str = "single_point",
        crossover_points: int = 2,
        crossover_rate: float = 0.9,
        mutation: str = "bitflip",
        mutation_rate: float | None = None,
    ) -> None:
        super().__init__(space, population, selection="tournament", tournament_size=tournament_size,
                         crossover=crossover, crossover_points=crossover_points, crossover_rate=crossover_rate,
                         mutation=mutation, mutation_rate=mutation_rate, elitism=0)

    def options(self) -> dict[str, Any]:
        options = super().options()
        del options["selection"], options["elitism"]
        return options

    def update(self, state: dict[str, Any], results: Sequence[Evaluated]) -> dict[str, Any]:
        pool = population_from_state(state) + list(results)
        keep = nsga2_select([m.values for m in pool], [m.violation for m in pool], self.population)
        return state_with_population(state, [pool[i] for i in keep])
