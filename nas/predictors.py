"""The predictor door: a model of a score from encoded architectures, with an uncertainty.

Life cycle: a predictor is built with its options (and, when it draws random
numbers, a seed), then `fit(x, y, weights=None)` on the rows evaluated so far
(x: (rows, features) floats, e.g. `SearchSpace.encode`; y: finite scores,
larger or smaller is the caller's business; weights: how much each row counts,
uniform by default), then `predict(x) -> (mean, std)` for any rows. A fit
starts afresh: nothing of an earlier fit survives it, so refitting on the same
rows with the same seed gives the same predictions, and a strategy that
refits every generation needs no state beyond the evaluated set.

Two predictors stand behind it:

ridge      ridge regression (Bayesian linear regression with a Gaussian prior
           of precision `ridge` on the coefficients): std is the posterior
           predictive standard deviation, noise plus the coefficients'
           uncertainty. What the ls guide and the meta-model fit; the normal
           equations are `nas.ridge.RidgeSystem`, shared with the meta-model's
           cross-validation.
ensemble   `members` small multi-layer perceptrons that differ only in their
           random initial weights, trained full-batch with Adam on the same
           rows; mean and std over the members (the BANANAS predictor, White,
           Neiswanger & Savani, AAAI 2021, in NumPy: the members are trained
           together as one batched array, so a fit of 50-100 rows takes
           about 0.1 s on one thread (scripts/bananas_cost.py), and no torch
           import).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import Sequence

import numpy as np

from nas.ridge import RidgeSystem

PREDICTORS = ("ridge", "ensemble")


def ranks(v: Sequence[float] | np.ndarray) -> np.ndarray:
    """0-based ranks, ties averaged (many digits accuracies tie)."""
    _, inverse, counts = np.unique(np.asarray(v, dtype=float), return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    return ((ends - (counts - 1) / 2.0) - 1)[inverse]


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Rank correlation; NaN with fewer than 3 rows or a constant side."""
    if len(a) < 3:
        return math.nan
    ra, rb = ranks(a), ranks(b)
    if ra.std() == 0 or rb.std() == 0:
        return math.nan
    return float(np.corrcoef(ra, rb)[0, 1])


class Predictor(ABC):
    @abstractmethod
    def fit(self, x: np.ndarray, y: np.ndarray, weights: np.ndarray | None = None) -> "Predictor":
        """Fit on rows x with targets y (finite), each row weighted; returns self."""

    @abstractmethod
    def predict(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(mean, std) of the score of each row of x."""


def _rows(x: np.ndarray | Sequence[Sequence[float]]) -> np.ndarray:
    x = np.asarray(x, dtype=float)
    return x if x.ndim == 2 else x.reshape(len(x), -1)


def _weights(y: np.ndarray, weights: np.ndarray | None) -> np.ndarray:
    if weights is None:
        return np.ones_like(y)
    w = np.asarray(weights, dtype=float)
    if w.shape != y.shape or (w < 0).any() or not w.sum() > 0:
        raise ValueError("weights must be one non-negative number per row, not all zero")
    return w


class RidgePredictor(Predictor):
    """Ridge regression; with no rows it predicts 0 with an unknown (NaN) std."""

    def __init__(self, ridge: float = 1.0) -> None:
        self.ridge = float(ridge)
        self.coefficients: np.ndarray | None = None
        self.offset = 0.0
        self.noise = math.nan  # the residuals' weighted standard deviation
        self._whiten: np.ndarray | None = None  # L^-1, L the Cholesky factor of x'Wx + ridge I

    @classmethod
    def restored(cls, coefficients: Sequence[float], offset: float) -> "RidgePredictor":
        """A fit known only by its coefficients (a saved model): its std is NaN."""
        out = cls()
        out.coefficients, out.offset = np.asarray(coefficients, dtype=float), float(offset)
        return out

    def fit(self, x: np.ndarray, y: np.ndarray, weights: np.ndarray | None = None) -> "RidgePredictor":
        x, y = _rows(x), np.asarray(y, dtype=float)
        if not len(y):
            self.coefficients, self.offset, self.noise, self._whiten = np.zeros(x.shape[1]), 0.0, math.nan, None
            return self
        w = _weights(y, weights)
        system = RidgeSystem(x, y, w)
        self.coefficients, self.offset = system.solve(self.ridge)
        residual = y - (x @ self.coefficients + self.offset)
        self.noise = math.sqrt(float(np.average(residual**2, weights=w)))
        self._whiten = np.linalg.inv(np.linalg.cholesky(system.gram + self.ridge * np.eye(len(system.rhs))))
        return self

    def predict(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        assert self.coefficients is not None, "fit() first"
        x = _rows(x)
        mean = x @ self.coefficients + self.offset
        if self._whiten is None:
            return mean, np.full(len(x), math.nan)
        # x (x'Wx + ridge I)^-1 x' of each row is |L^-1 x|^2.
        return mean, self.noise * np.sqrt(1.0 + ((x @ self._whiten.T) ** 2).sum(1))


class EnsemblePredictor(Predictor):
    """`members` ReLU perceptrons of `hidden` widths; full-batch Adam (`lr`) for
    `epochs` steps on the weighted mean absolute error of standardised targets
    (BANANAS trains on absolute error: a few poor architectures do not pull the
    fit away from the good ones), with L2 `decay` on the weights."""

    def __init__(self, members: int = 5, hidden: Sequence[int] = (32, 32), epochs: int = 200, lr: float = 0.01,
                 decay: float = 1e-4, seed: int = 0) -> None:
        self.members = int(members)
        self.hidden = tuple(int(h) for h in hidden)
        self.epochs = int(epochs)
        self.lr = float(lr)
        self.decay = float(decay)
        self.seed = int(seed)
        self._params: list[np.ndarray] | None = None
        self._scale = (0.0, 1.0)

    def fit(self, x: np.ndarray, y: np.ndarray, weights: np.ndarray | None = None) -> "EnsemblePredictor":
        x, y = _rows(x), np.asarray(y, dtype=float)
        rng = np.random.default_rng(self.seed)
        sizes = (x.shape[1], *self.hidden, 1)
        shapes = [shape for fan_in, fan_out in zip(sizes[:-1], sizes[1:])
                  for shape in ((self.members, fan_in, fan_out), (self.members, 1, fan_out))]
        # Every weight and bias is a view into one flat vector, and so is every
        # gradient: Adam then updates all of them in a handful of array operations.
        total = sum(math.prod(s) for s in shapes)
        theta, grad = np.zeros(total), np.zeros(total)
        decay = np.zeros_like(theta)
        self._params, grads, at = [], [], 0
        for k, shape in enumerate(shapes):
            size = math.prod(shape)
            self._params.append(theta[at:at + size].reshape(shape))
            grads.append(grad[at:at + size].reshape(shape))
            if k % 2 == 0:  # weights, He-initialised and decayed; biases start at zero
                self._params[-1][...] = rng.normal(0.0, math.sqrt(2.0 / shape[1]), shape)
                decay[at:at + size] = self.decay
            at += size
        if not len(y):
            self._scale = (0.0, 1.0)
            return self
        w = _weights(y, weights)
        mean = float(np.average(y, weights=w))
        std = math.sqrt(float(np.average((y - mean) ** 2, weights=w)))
        self._scale = (mean, std if std > 1e-12 else 1.0)
        target = (y - mean) / self._scale[1]
        w = (w / w.sum())[None, :]
        first, second = np.zeros_like(theta), np.zeros_like(theta)
        beta1, beta2 = 0.9, 0.999
        for step in range(1, self.epochs + 1):
            out, inputs = self._forward(x)
            # d(loss)/d(out) of sum_i w_i |out_i - t_i|, per member.
            self._backward((np.sign(out - target) * w)[:, :, None], inputs, grads)
            g = grad + decay * theta
            first *= beta1
            first += (1 - beta1) * g
            second *= beta2
            second += (1 - beta2) * g * g
            theta -= (self.lr * math.sqrt(1 - beta2**step) / (1 - beta1**step)) * first / (np.sqrt(second) + 1e-8)
        return self

    def _forward(self, x: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
        """Every member's output (members, rows) and each layer's input."""
        assert self._params is not None, "fit() first"
        h = np.broadcast_to(x, (self.members, *x.shape))
        inputs = []
        layers = len(self._params) // 2
        for layer in range(layers):
            inputs.append(h)
            h = h @ self._params[2 * layer] + self._params[2 * layer + 1]
            if layer < layers - 1:
                h = np.maximum(h, 0.0)
        return h[:, :, 0], inputs

    def _backward(self, grad: np.ndarray, inputs: list[np.ndarray], out: list[np.ndarray]) -> None:
        """The gradients of the weights and biases, written into `out`."""
        assert self._params is not None
        for layer in reversed(range(len(self._params) // 2)):
            np.matmul(inputs[layer].transpose(0, 2, 1), grad, out=out[2 * layer])
            grad.sum(1, keepdims=True, out=out[2 * layer + 1])
            if layer:
                # Through the weights, then the ReLU of the layer below (its output is this input).
                grad = (grad @ self._params[2 * layer].transpose(0, 2, 1)) * (inputs[layer] > 0)

    def predict(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        out, _ = self._forward(_rows(x))
        out = out * self._scale[1] + self._scale[0]
        return out.mean(0), out.std(0)
