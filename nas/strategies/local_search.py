"""Local search: hill climbing with random restarts (White et al., 2020).

Start from the best of a random population; then, generation by generation,
evaluate a random batch of not-yet-evaluated neighbours of the current
architecture and move to the best of them if it is better. When every
neighbour has been evaluated and none is better, the current architecture is
a local optimum and the search restarts from random architectures.

Moves through architectures evaluated earlier cost no query: before it
proposes, the climb follows known better neighbours as far as they go.

Options: `restart: kick` restarts `kick` random mutations away from the best
architecture found (iterated local search) instead of at random; `guide:
predictor` tries neighbours in the order a linear predictor fitted on the
evaluated architectures ranks them, and restarts at the predicted best new one
of `pool` random architectures.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from nas.options import choice, integer
from nas.spaces.base import SearchSpace
from nas.strategies.base import Evaluated, Proposal, Strategy, StrategyError, fittest, key_of, known
from nas.strategies.predictor import LinearPredictor

RESTARTS = ("random", "kick")
GUIDES = ("none", "predictor")
# The trace of a restart point: update() moves there even if it is worse.
RESTART = "restart"


class LocalSearch(Strategy):
    name = "ls"
    multi_objective = False  # a climb compares two candidates by one number

    def __init__(
        self, space: SearchSpace, population: int, restart: str = "random", kick: int = 3, guide: str = "none",
        pool: int = 100,
    ) -> None:
        super().__init__(space, population)
        self.restart = choice("ls", "restart", restart, RESTARTS, StrategyError)
        self.kick = integer("ls", "kick", kick, 1, StrategyError)
        self.guide = choice("ls", "guide", guide, GUIDES, StrategyError)
        self.pool = integer("ls", "pool", pool, 1, StrategyError)

    def options(self) -> dict[str, Any]:
        return {"restart": self.restart, "kick": self.kick, "guide": self.guide, "pool": self.pool}

    def propose(
        self, state: dict[str, Any], history: Sequence[Evaluated], n: int, rng: np.random.Generator
    ) -> list[Proposal]:
        current = state.get("current")
        if current is None:
            return [self._restart(p) for p in self.initial(n, history, rng)]
        by_arch = {e.arch: e for e in history}
        here = self._climb(Evaluated.from_json(current), by_arch)
        fresh = [g for g in self.space.neighbours(here.genome) if self.space.to_string(g) not in by_arch]
        if not fresh:  # a local optimum: every neighbour is known and none is better
            return [self._restart(p) for p in self.fill(n, known(history), rng, self._restart_from(history))]
        order = self._order(fresh, history, rng)[:n]
        proposals = [Proposal(fresh[i], self.space.to_string(fresh[i]), "neighbour", (here.key,)) for i in order]
        if len(proposals) < n:  # fewer untried neighbours than places: fill with random ones
            proposals += self.fill(n - len(proposals), known(history) | {p.arch for p in proposals}, rng, self._random)
        return proposals

    def _order(self, genomes: list, history: Sequence[Evaluated], rng: np.random.Generator) -> np.ndarray:
        """Indices of `genomes` in the order to try them: random, or predicted best first."""
        order = rng.permutation(len(genomes))
        if self.guide == "none":
            return order
        predicted = self._predictor(history).predict([genomes[i] for i in order])
        return order[np.argsort(-predicted, kind="stable")]

    def _predictor(self, history: Sequence[Evaluated]) -> LinearPredictor:
        return LinearPredictor(self.space.cardinalities()).fit([e.genome for e in history], [e.fitness for e in history])

    def _climb(self, here: Evaluated, by_arch: dict[str, Evaluated]) -> Evaluated:
        """Follow the best known better neighbour until there is none."""
        while True:
            better = [by_arch[a] for a in map(self.space.to_string, self.space.neighbours(here.genome))
                      if a in by_arch and key_of(by_arch[a]) > key_of(here)]
            if not better:
                return here
            here = fittest(better, 1)[0]

    def _restart_from(self, history: Sequence[Evaluated]):
        """Where a climb restarts: a random architecture, or `kick` random
        mutations away from the best one found (iterated local search)."""
        if self.restart == "random" and self.guide == "none":
            return self._random
        if self.restart == "random":
            predictor = self._predictor(history)
            evaluated = known(history)

            def screened(rng: np.random.Generator):
                # The predicted best new one of `pool` random architectures: screening costs no query.
                pool = [self.space.sample(rng) for _ in range(self.pool)]
                for i in np.argsort(-predictor.predict(pool), kind="stable"):
                    if self.space.to_string(pool[i]) not in evaluated:
                        return pool[i], "random", ()
                return pool[0], "random", ()

            return screened
        best = fittest(history, 1)[0]

        def kicked(rng: np.random.Generator):
            genome = best.genome
            for _ in range(self.kick):
                genome = self.space.mutate(genome, rng)
            return genome, "kick", (best.key,)

        return kicked

    @staticmethod
    def _restart(p: Proposal) -> Proposal:
        return Proposal(p.genome, p.arch, p.origin, p.parents, RESTART)

    def update(self, state: dict[str, Any], results: Sequence[Evaluated]) -> dict[str, Any]:
        if not results:
            return dict(state)
        best = fittest(results, 1)[0]
        current = state.get("current")
        restarted = any(r.trace == RESTART for r in results)
        if current is None or restarted or key_of(best) > key_of(Evaluated.from_json(current)):
            return {**state, "current": best.to_json()}
        return dict(state)
