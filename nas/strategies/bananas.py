"""BANANAS: Bayesian optimisation with a neural predictor (White, Neiswanger & Savani, AAAI 2021).

Generation 0 is random (or the warm start's seeds). Every later generation
refits a predictor with an uncertainty (`nas.predictors`: by default an
ensemble of `members` small perceptrons) on the encoded architectures
evaluated so far (`SearchSpace.encode`, by default the space's
`default_encoding`: on nb201 the path encoding beside one-hot edges), fitting
their ranks (`target: rank`, 0 the worst, 1 the best: what the acquisition
needs is the order of the good ones, and standardised values are dominated
by the few cells that barely learn, 10 % beside 94 %; on the NAS-Bench-201
table ranks found better cells within 25 to 50 queries), makes
`pool` new candidates by mutating the `parents` best architectures so far (1
to `edits` mutations each), and picks n of them with an acquisition
function, jointly:

its   independent Thompson sampling (the paper's default): each of the n
      places draws one value per candidate from N(mean, std), independently,
      and takes the best candidate not yet picked, so a batch spreads over what
      the model is unsure of instead of piling onto one optimum;
ei    expected improvement over the best result so far, and
ucb   upper confidence bound mean + `beta` std, both batched by the Kriging
      believer (Ginsbourger, Le Riche & Carraro 2010): after each pick the
      predictor is refitted as if the pick had scored its predicted mean, which
      shrinks the uncertainty around it before the next place is filled.

The state is the evaluated set: nothing is kept between generations that the
history does not hold, and the predictor's seed comes from the generation's
generator, so a generation proposed again is the same. Measured constraints
steer which architectures are mutated (the best by `key_of`), not the
predictor, which models the objective alone.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import numpy as np

from nas.options import choice, integer, number
from nas.predictors import PREDICTORS, EnsemblePredictor, Predictor, RidgePredictor
from nas.spaces.base import SearchSpace
from nas.strategies.base import Evaluated, Proposal, Strategy, StrategyError, fittest, known
from nas.strategies.predictor import training_set

ACQUISITIONS = ("its", "ei", "ucb")
# What the predictor fits: each result's rank among the evaluated (0 the worst,
# 1 the best, ties averaged) or its value.
TARGETS = ("rank", "value")


class Bananas(Strategy):
    name = "bananas"
    multi_objective = False

    def __init__(
        self, space: SearchSpace, population: int, acquisition: str = "its", encoding: str | None = None,
        predictor: str = "ensemble", members: int = 5, pool: int = 200, parents: int = 10, edits: int = 1,
        beta: float = 1.0, target: str = "rank",
    ) -> None:
        super().__init__(space, population)
        self.acquisition = choice("bananas", "acquisition", acquisition, ACQUISITIONS, StrategyError)
        self.encoding = space.default_encoding if encoding is None else encoding
        for part in str(self.encoding).split("+"):
            choice("bananas", "encoding", part, space.encodings(), StrategyError)
        self.predictor = choice("bananas", "predictor", predictor, PREDICTORS, StrategyError)
        self.members = integer("bananas", "members", members, 2, StrategyError)
        self.pool = integer("bananas", "pool", pool, 1, StrategyError)
        self.parents = integer("bananas", "parents", parents, 1, StrategyError)
        self.edits = integer("bananas", "edits", edits, 1, StrategyError)
        self.beta = number("bananas", "beta", beta, lambda v: v >= 0, ">= 0", StrategyError)
        self.target = choice("bananas", "target", target, TARGETS, StrategyError)

    def options(self) -> dict[str, Any]:
        return {"acquisition": self.acquisition, "encoding": self.encoding, "predictor": self.predictor,
                "members": self.members, "pool": self.pool, "parents": self.parents, "edits": self.edits,
                "beta": self.beta, "target": self.target}

    def propose(
        self, state: dict[str, Any], history: Sequence[Evaluated], n: int, rng: np.random.Generator
    ) -> list[Proposal]:
        scored = [e for e in history if math.isfinite(e.fitness)]
        if not scored:
            return self.initial(n, history, rng)
        parents = fittest(scored, self.parents)

        def mutant(rng: np.random.Generator):
            parent = parents[int(rng.integers(len(parents)))]
            genome = parent.genome
            for _ in range(1 + int(rng.integers(self.edits))):
                genome = self.space.mutate(genome, rng)
            return genome, "mutation", (parent.key,)

        pool = self.fill(max(self.pool, n), known(history), rng, mutant)
        x, y = training_set(self.space, scored, self.encoding, self.target)
        candidates = self.space.encode([p.genome for p in pool], self.encoding)
        seed = int(rng.integers(2**32))
        if self.acquisition == "its":
            picked = thompson(self._model(seed).fit(x, y), candidates, n, rng)
        else:
            picked = believer(lambda: self._model(seed), x, y, candidates, n, self._score)
        return [pool[i] for i in picked]

    def _model(self, seed: int) -> Predictor:
        if self.predictor == "ridge":
            return RidgePredictor()
        return EnsemblePredictor(members=self.members, seed=seed)

    def _score(self, mean: np.ndarray, std: np.ndarray, best: float) -> np.ndarray:
        if self.acquisition == "ucb":
            return mean + self.beta * std
        return expected_improvement(mean, std, best)


def thompson(model: Predictor, candidates: np.ndarray, n: int, rng: np.random.Generator) -> list[int]:
    """n distinct rows of `candidates` by independent Thompson sampling: for each
    place one draw per candidate from N(mean, std), the best unpicked draw wins."""
    mean, std = model.predict(candidates)
    std = np.nan_to_num(std)
    left = np.ones(len(mean), dtype=bool)
    picked = []
    for _ in range(min(n, len(mean))):
        draw = mean + std * rng.standard_normal(len(mean))
        draw[~left] = -np.inf
        i = int(np.argmax(draw))
        left[i] = False
        picked.append(i)
    return picked


def believer(make: Callable[[], Predictor], x: np.ndarray, y: np.ndarray, candidates: np.ndarray, n: int,
             score: Callable[[np.ndarray, np.ndarray, float], np.ndarray]) -> list[int]:
    """n distinct rows of `candidates`, each the best by `score(mean, std, best)`
    of a predictor (`make()`) refitted on the rows so far plus the picks, each
    believed to score its predicted mean (the Kriging believer)."""
    picked: list[int] = []
    best = float(y.max())
    for _ in range(min(n, len(candidates))):
        mean, std = make().fit(x, y).predict(candidates)
        value = score(mean, np.nan_to_num(std), best)
        value[picked] = -np.inf
        i = int(np.argmax(value))
        picked.append(i)
        x, y = np.vstack([x, candidates[i:i + 1]]), np.append(y, mean[i])
    return picked


def expected_improvement(mean: np.ndarray, std: np.ndarray, best: float) -> np.ndarray:
    """E[max(f - best, 0)] for f ~ N(mean, std) (Jones, Schonlau & Welch 1998);
    the plain improvement where std is 0."""
    gain = mean - best
    safe = np.where(std > 0, std, 1.0)
    z = gain / safe
    cdf = 0.5 * (1.0 + np.vectorize(math.erf)(z / math.sqrt(2.0)))
    pdf = np.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi)
    return np.where(std > 0, gain * cdf + std * pdf, np.maximum(gain, 0.0))
