"""Genome-level adapters of the predictor door (nas.predictors) for strategies.

`LinearPredictor`, the ls guide's surrogate of fitness: ridge regression on one-hot genes.

Fitted on the architectures evaluated so far, it ranks candidates that have
not been evaluated, at no query cost. It assumes each gene's value adds its
own share to the fitness (with `pairs`, each pair of genes' values too) --
crude, but with a few dozen evaluations it orders neighbours better than
chance on cell spaces, and it knows nothing of any particular benchmark.
The encoding is the space's (`SearchSpace.encode`), the fit the predictor
door's ridge (`nas.predictors.RidgePredictor`).

`training_set` is what bananas fits; `predictor_score` the screen by its
predictor that any strategy can have (`screen: {by: predictor}`).
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import numpy as np

from nas.predictors import EnsemblePredictor, RidgePredictor, ranks
from nas.spaces.base import Genome, SearchSpace
from nas.strategies.base import Evaluated

# A strategy's `guide` option: whether it screens by this predictor (ls, nsga2).
GUIDES = ("none", "predictor")


class LinearPredictor:
    """`pairs`: pairs of genes as features too, for spaces of few genes."""

    def __init__(self, space: SearchSpace, ridge: float = 1.0, pairs: bool = False) -> None:
        self.space = space
        self.encoding = "onehot+pairs" if pairs else "onehot"
        self.model = RidgePredictor(ridge)

    def fit(self, genomes: Sequence[Genome], fitness: Sequence[float]) -> "LinearPredictor":
        """Fit on the finite fitness values; with none, predictions are all equal."""
        pairs = [(g, f) for g, f in zip(genomes, fitness) if math.isfinite(f)]
        x = self.space.encode([g for g, _ in pairs], self.encoding) if pairs else np.zeros((0, 0))
        self.model.fit(x, np.array([f for _, f in pairs]))
        return self

    def predict(self, genomes: Sequence[Genome]) -> np.ndarray:
        """The predicted fitness of each genome."""
        assert self.model.coefficients is not None, "fit() first"
        if not len(self.model.coefficients):  # fitted on nothing: every prediction the same
            return np.zeros(len(genomes))
        return self.model.predict(self.space.encode(genomes, self.encoding))[0]


def training_set(space: SearchSpace, scored: Sequence[Evaluated], encoding: str,
                 target: str = "rank") -> tuple[np.ndarray, np.ndarray]:
    """The encoded architectures of the results and what the predictor fits: their
    ranks scaled to [0, 1] (`target: rank`) or their fitness values."""
    x = space.encode([e.genome for e in scored], encoding)
    y = np.array([e.fitness for e in scored])
    if target == "rank":
        y = ranks(y) / max(len(y) - 1, 1)
    return x, y


def predictor_score(space: SearchSpace, members: int = 5
                    ) -> Callable[[Sequence[Genome], Sequence[Evaluated], np.random.Generator], np.ndarray]:
    """A screen by bananas' predictor (`screen: {by: predictor}`): the mean prediction
    of an ensemble of `members` perceptrons on the space's default encoding, refitted
    on the ranks of the run's results each time it scores (seeded by `rng`); equal
    scores (no screening) with fewer than two results."""
    encoding = space.default_encoding

    def score(genomes: Sequence[Genome], history: Sequence[Evaluated], rng: np.random.Generator) -> np.ndarray:
        scored = [e for e in history if math.isfinite(e.fitness)]
        if len(scored) < 2:
            return np.zeros(len(genomes))
        x, y = training_set(space, scored, encoding)
        model = EnsemblePredictor(members=members, seed=int(rng.integers(2**32))).fit(x, y)
        return model.predict(space.encode(genomes, encoding))[0]

    return score
