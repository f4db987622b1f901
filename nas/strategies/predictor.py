"""A cheap surrogate of fitness: ridge regression on one-hot encoded genes.

Fitted on the architectures evaluated so far, it ranks candidates that have
not been evaluated, at no query cost. It assumes each gene's value adds its
own share to the fitness -- crude, but with a few dozen evaluations it orders
neighbours better than chance on cell spaces, and it knows nothing of any
particular benchmark.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from nas.ridge import RidgeSystem, one_hot, pair_hot
from nas.spaces.base import Genome

# A strategy's `guide` option: whether it screens by this predictor (ls, nsga2).
GUIDES = ("none", "predictor")


class LinearPredictor:
    """`pairs`: pairs of genes as features too (pair_hot), for spaces of few genes."""

    def __init__(self, cardinalities: Sequence[int], ridge: float = 1.0, pairs: bool = False) -> None:
        self.cardinalities = tuple(cardinalities)
        self.ridge = ridge
        self.pairs = pairs
        self.weights: np.ndarray | None = None
        self.mean = 0.0

    def encode(self, genomes: Sequence[Genome]) -> np.ndarray:
        x = one_hot(genomes, self.cardinalities)
        return np.concatenate([x, pair_hot(genomes, self.cardinalities)], 1) if self.pairs else x

    def fit(self, genomes: Sequence[Genome], fitness: Sequence[float]) -> "LinearPredictor":
        """Fit on the finite fitness values; with none, predictions are all equal."""
        pairs = [(g, f) for g, f in zip(genomes, fitness) if math.isfinite(f)]
        if not pairs:
            self.weights = np.zeros(self.encode([tuple(0 for _ in self.cardinalities)]).shape[1])
            return self
        x = self.encode([g for g, _ in pairs])
        self.weights, self.mean = RidgeSystem(x, np.array([f for _, f in pairs])).solve(self.ridge)
        return self

    def predict(self, genomes: Sequence[Genome]) -> np.ndarray:
        assert self.weights is not None, "fit() first"
        return self.encode(genomes) @ self.weights + self.mean
