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

Under several objectives it is Pareto local search (Paquete, Chiarandini &
Stuetzle 2004): each generation evaluates not-yet-evaluated neighbours of the
feasible front found so far (random ones when none is left). With `guide:
predictor`, the n neighbours chosen are those whose predicted objective values
add most to the front's hypervolume, one after the other (each chosen one's
predicted point joins the front, so the batch spreads along it; with no gain
left, the one predicted best on the first objective). An objective the run
knows without evaluating (params, FLOPs) enters with its true value, the
others through ridge regressions on one-hot genes and, for spaces of few
genes, gene pairs; with fewer untried neighbours than places, `pool` random
architectures are screened with them. The state is the history itself.

Under constraints the neighbourhood also holds every swap of two genes'
values (same operations elsewhere: on nb201 the same parameter count), so the
climb can move along a binding budget, and the guide tries the neighbours a
ridge fit of the violations seen predicts to be feasible first.
"""

from __future__ import annotations

import itertools
import math
from typing import Any, Sequence

import numpy as np

from nas.objectives import hypervolume_gains, ideal_and_nadir, nondominated
from nas.options import choice, integer
from nas.ridge import PAIR_GENES
from nas.spaces.base import Genome, SearchSpace
from nas.strategies.base import Evaluated, Proposal, Strategy, StrategyError, fittest, key_of, known
from nas.strategies.predictor import GUIDES, LinearPredictor

RESTARTS = ("random", "kick")
# The trace of a restart point: update() moves there even if it is worse.
RESTART = "restart"
# The reference point of a predicted hypervolume gain lies this far (as a share
# of the range) beyond the nadir, so that a new extreme point counts.
MARGIN = 0.1
# A predicted violation above this (a share of the bound) counts as a breach.
BREACH = 0.1


class LocalSearch(Strategy):
    name = "ls"

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
        if len(self.objectives) > 1:
            return self._pareto(history, n, rng)
        current = state.get("current")
        if current is None:
            return [self._restart(p) for p in self.initial(n, history, rng)]
        by_arch = {e.arch: e for e in history}
        here = self._climb(Evaluated.from_json(current), by_arch)
        fresh = [g for g in self._neighbours(here.genome) if self.space.to_string(g) not in by_arch
                 and (self.feasible is None or self.feasible(g))]
        if not fresh:  # a local optimum: every neighbour is known and none is better
            return [self._restart(p) for p in self.fill(n, known(history), rng, self._restart_from(history))]
        order = self._order(fresh, history, rng)[:n]
        proposals = [Proposal(fresh[i], self.space.to_string(fresh[i]), "neighbour", (here.key,)) for i in order]
        if len(proposals) < n:  # fewer untried neighbours than places: fill with random ones
            proposals += self.fill(n - len(proposals), known(history) | {p.arch for p in proposals}, rng, self._random)
        return proposals

    def _neighbours(self, genome: Genome) -> list[Genome]:
        """The space's one-gene neighbours; under constraints also every swap of
        two genes' values: where the budget binds, a one-gene change mostly crosses
        it (one more convolution), while a swap moves an operation to another
        place at the same cost, along the boundary where the best feasible cells lie."""
        out = self.space.neighbours(genome)
        if not self.constraints:
            return out
        seen = {self.space.canonical(genome), *out}
        cards = self.space.cardinalities()
        for i, j in itertools.combinations(range(len(genome)), 2):
            if genome[i] == genome[j] or cards[i] != cards[j]:
                continue
            child = list(genome)
            child[i], child[j] = genome[j], genome[i]
            if self.space.is_valid(tuple(child)):
                swapped = self.space.canonical(tuple(child))
                if swapped not in seen:
                    seen.add(swapped)
                    out.append(swapped)
        return out

    def _order(self, genomes: list, history: Sequence[Evaluated], rng: np.random.Generator) -> np.ndarray:
        """Indices of `genomes` in the order to try them: random, or predicted best first."""
        order = rng.permutation(len(genomes))
        if self.guide == "none":
            return order
        ordered = [genomes[i] for i in order]
        predicted = self._predictor(history).predict(ordered)
        breaks = self._predicted_breach(history, ordered)
        return order[np.lexsort((-predicted, breaks))]

    def _predicted_breach(self, history: Sequence[Evaluated], genomes: list[Genome]) -> np.ndarray:
        """Whether each genome is predicted to break a measured constraint (1) or
        not (0): a ridge fit of the violations seen, once some result broke one.
        The guide tries predicted-feasible ones first, so that fewer queries are
        spent on architectures whose measured cost rules them out."""
        if not any(e.violation > 0 for e in history):
            return np.zeros(len(genomes))
        model = LinearPredictor(self.space).fit(
            [e.genome for e in history], [e.violation for e in history])
        return (model.predict(genomes) > BREACH).astype(float)

    def _predictor(self, history: Sequence[Evaluated]) -> LinearPredictor:
        return LinearPredictor(self.space).fit([e.genome for e in history], [e.fitness for e in history])

    def _climb(self, here: Evaluated, by_arch: dict[str, Evaluated]) -> Evaluated:
        """Follow the best known better neighbour until there is none."""
        while True:
            better = [by_arch[a] for a in map(self.space.to_string, self._neighbours(here.genome))
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
                for i in np.lexsort((-predictor.predict(pool), self._predicted_breach(history, pool))):
                    if self.space.to_string(pool[i]) not in evaluated and (
                            self.feasible is None or self.feasible(pool[i])):
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

    # -- several objectives: Pareto local search ------------------------------------------

    def _pareto(self, history: Sequence[Evaluated], n: int, rng: np.random.Generator) -> list[Proposal]:
        evaluated = known(history)
        good = [e for e in history if e.violation == 0 and all(math.isfinite(v) for v in e.values)]
        front = [good[i] for i in nondominated([e.values for e in good])]
        fresh: dict[str, tuple[Genome, str]] = {}
        for member in front:
            for g in self._neighbours(member.genome):
                arch = self.space.to_string(g)
                if arch not in evaluated and arch not in fresh and (self.feasible is None or self.feasible(g)):
                    fresh[arch] = (g, member.key)
        if self.guide == "predictor" and len(fresh) < n:
            # Too few untried neighbours: screen `pool` random architectures as well.
            for _ in range(self.pool):
                g = self.space.sample(rng)
                arch = self.space.to_string(g)
                if arch not in evaluated and arch not in fresh and (self.feasible is None or self.feasible(g)):
                    fresh[arch] = (g, "")
        candidates = list(fresh.values())
        order = [int(i) for i in rng.permutation(len(candidates))]
        if self.guide == "predictor" and len(good) >= 2 and candidates:
            order = self._by_gain([candidates[i][0] for i in order], good, front, n, order)
        proposals = [Proposal(candidates[i][0], self.space.to_string(candidates[i][0]),
                              "neighbour" if candidates[i][1] else "random",
                              (candidates[i][1],) if candidates[i][1] else ()) for i in order[:n]]
        if len(proposals) < n:  # no front yet, or fewer untried neighbours than places
            proposals += self.fill(n - len(proposals), evaluated | {p.arch for p in proposals}, rng, self._random)
        return proposals

    def _by_gain(self, genomes: list[Genome], good: Sequence[Evaluated], front: Sequence[Evaluated], n: int,
                 order: list[int]) -> list[int]:
        """`order` (indices of the candidates, whose genomes are `genomes` in that
        order) resorted: the n that add most predicted hypervolume, one by one."""
        predicted = self._predicted(genomes, good)
        points = [m.values for m in front]
        ideal, nadir = ideal_and_nadir([*points, *predicted])[0], ideal_and_nadir(points)[1]
        span = [max(i - m, 1e-12) for i, m in zip(ideal, nadir)]

        def scaled(p: Sequence[float]) -> tuple[float, ...]:
            return tuple((x - m) / s + MARGIN for x, m, s in zip(p, nadir, span))

        current = [scaled(p) for p in points]
        candidates = [scaled(p) for p in predicted]
        left, chosen = list(range(len(genomes))), []
        while left and len(chosen) < n:
            gains = hypervolume_gains(current, [candidates[k] for k in left], [0.0] * len(span))
            k = max(range(len(left)), key=lambda j: (gains[j] > 0, gains[j], predicted[left[j]][0], -left[j]))
            chosen.append(left.pop(k))
            current.append(candidates[chosen[-1]])
        return [order[k] for k in chosen + left]

    def _predicted(self, genomes: list[Genome], good: Sequence[Evaluated]) -> list[tuple[float, ...]]:
        """Signed objective values of the genomes: true where cheap, else predicted."""
        cheap = [self.cheap(g) for g in genomes] if self.cheap is not None else [{} for _ in genomes]
        pairs = len(self.space.cardinalities()) <= PAIR_GENES
        columns = []
        for k, objective in enumerate(self.objectives):
            if all(objective["metric"] in c for c in cheap):
                sign = 1.0 if objective["direction"] == "max" else -1.0
                columns.append([sign * c[objective["metric"]] for c in cheap])
            else:
                model = LinearPredictor(self.space, pairs=pairs).fit(
                    [e.genome for e in good], [e.values[k] for e in good])
                columns.append([float(v) for v in model.predict(genomes)])
        return [tuple(row) for row in zip(*columns)]

    def update(self, state: dict[str, Any], results: Sequence[Evaluated]) -> dict[str, Any]:
        if len(self.objectives) > 1:
            return dict(state)  # Pareto local search reads the history alone
        if not results:
            return dict(state)
        best = fittest(results, 1)[0]
        current = state.get("current")
        restarted = any(r.trace == RESTART for r in results)
        if current is None or restarted or key_of(best) > key_of(Evaluated.from_json(current)):
            return {**state, "current": best.to_json()}
        return dict(state)
