"""One-hot genes and ridge regression: the linear surrogate of the ls guide and the meta-model.

`one_hot` encodes genomes gene by gene (gene i's value v sets column
offset_i + v). `RidgeSystem` holds the normal equations of a (row-weighted)
ridge fit of centred targets, built once, so that any subset of columns and
any ridge strength is one small solve: the meta-model's cross-validation
tries many, the local search's predictor one. NumPy only: both run in the
light propose step.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np


def one_hot(genomes: Sequence[Sequence[int]] | np.ndarray, cardinalities: Sequence[int]) -> np.ndarray:
    """(len(genomes), sum(cardinalities)) indicators of each gene's value."""
    offsets = np.concatenate([[0], np.cumsum(cardinalities)[:-1]]).astype(int)
    g = np.asarray(genomes, dtype=int).reshape(len(genomes), len(offsets))
    x = np.zeros((len(g), int(sum(cardinalities))))
    x[np.arange(len(g))[:, None], offsets + g] = 1.0
    return x


# Pairs of genes are features only for spaces of at most this many genes (nb201
# has 6: 375 pair columns); a chain of 30 genes would have thousands.
PAIR_GENES = 8


def pair_hot(genomes: Sequence[Sequence[int]] | np.ndarray, cardinalities: Sequence[int]) -> np.ndarray:
    """Indicators of each pair of genes' values (gene i = a and gene j = b, i < j):
    what an additive model of genes misses, e.g. two edges that are `none` together."""
    g = np.asarray(genomes, dtype=int).reshape(len(genomes), len(cardinalities))
    parts = []
    for i in range(len(cardinalities)):
        for j in range(i + 1, len(cardinalities)):
            pair = np.zeros((len(g), cardinalities[i] * cardinalities[j]))
            pair[np.arange(len(g)), g[:, i] * cardinalities[j] + g[:, j]] = 1.0
            parts.append(pair)
    return np.concatenate(parts, 1) if parts else np.zeros((len(g), 0))


class RidgeSystem:
    """x'Wx and x'W(y - offset) of a ridge fit, W = diag(weights) (uniform by default),
    offset the weighted mean of y."""

    def __init__(self, x: np.ndarray, y: np.ndarray, weights: np.ndarray | None = None) -> None:
        w = np.ones_like(y) if weights is None else weights
        self.offset = float(np.average(y, weights=w))
        xw = x * w[:, None]
        self.gram = xw.T @ x
        self.rhs = xw.T @ (y - self.offset)

    def solve(self, ridge: float, columns: np.ndarray | None = None) -> tuple[np.ndarray, float]:
        """(coefficients of `columns` (default all), offset): predict x[:, columns] @ coefficients + offset."""
        if columns is None:  # every column: no copy of the normal equations to take
            return np.linalg.solve(self.gram + ridge * np.eye(len(self.rhs)), self.rhs), self.offset
        gram = self.gram[np.ix_(columns, columns)] + ridge * np.eye(len(columns))
        return np.linalg.solve(gram, self.rhs[columns]), self.offset
