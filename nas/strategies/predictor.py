"""The ls guide's surrogate of fitness: ridge regression on one-hot genes.

Fitted on the architectures evaluated so far, it ranks candidates that have
not been evaluated, at no query cost. It assumes each gene's value adds its
own share to the fitness (with `pairs`, each pair of genes' values too) --
crude, but with a few dozen evaluations it orders neighbours better than
chance on cell spaces, and it knows nothing of any particular benchmark.
The encoding is the space's (`SearchSpace.encode`), the fit the predictor
door's ridge (`nas.predictors.RidgePredictor`).
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from nas.predictors import RidgePredictor
from nas.spaces.base import Genome, SearchSpace

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
