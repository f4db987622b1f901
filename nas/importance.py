"""Operation importance: how much each choice at each position of the genome moves a run's objective.

The run's evaluated candidates are the data: the score (the primary objective,
in its own units) is fitted as a sum of one value per gene, a ridge regression
on one-hot genes (nas.ridge, the fit the ls guide and the meta-model use).
Coefficients of one position are only defined up to a shared constant (the
one-hot columns of a position sum to one), so a choice's *effect* is its
coefficient minus the count-weighted mean of its position's coefficients: how
far that choice moves the score from the position's average over the
candidates. Its uncertainty comes from refitting on bootstrap resamples of the
candidates (the spread, and a 90 % interval of the resampled effects).

The effects are associations in what the search evaluated, not causes: a
search that kept convolutions on one edge while another improved credits both.
NumPy only (the report step is light).
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from nas.ridge import RidgeSystem, one_hot

Labels = Sequence[tuple[str, Sequence[str]]]
COLUMNS = ("position", "choice", "effect", "std", "low", "high", "count")
# The interval reported: the 5th and 95th percentiles of the bootstrap effects.
INTERVAL = (5.0, 95.0)


def labels_of(space_or_labels: Any) -> list[tuple[str, list[str]]]:
    """A space's gene_labels(), or labels given as they are (a caller without the space)."""
    labels = space_or_labels.gene_labels() if hasattr(space_or_labels, "gene_labels") else space_or_labels
    return [(str(position), [str(v) for v in values]) for position, values in labels]


def finite(genomes: Sequence[Sequence[int]], scores: Sequence[float],
           cardinalities: Sequence[int]) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """The genomes and scores of candidates with a finite score, and their indices: a
    failed candidate has none, and a NaN would poison every coefficient. A genome that
    does not fit the labels is an error (it comes from another space), not a row to skip."""
    keep = [i for i, s in enumerate(scores) if s is not None and math.isfinite(float(s))]
    g = np.asarray([list(genomes[i]) for i in keep], dtype=int).reshape(len(keep), len(cardinalities))
    if len(g) and ((g < 0) | (g >= np.asarray(cardinalities))).any():
        raise ValueError(f"a genome has a gene outside its position's {list(cardinalities)} values")
    return g, np.asarray([float(scores[i]) for i in keep]), keep


def effects(x: np.ndarray, y: np.ndarray, weights: np.ndarray, cardinalities: Sequence[int],
            ridge: float) -> np.ndarray:
    """Each column's effect under a fit with these row weights (bootstrap draws as
    counts); NaN for a choice that no weighted row has, whose coefficient the ridge
    merely sets to zero and so says nothing."""
    coefficients, _ = RidgeSystem(x, y, weights).solve(ridge)
    counts = weights @ x
    position = np.repeat(np.arange(len(cardinalities)), cardinalities)
    # A position no weighted row uses (a gene no layer needs) has no average: its effects are NaN.
    totals = np.bincount(position, counts, minlength=len(cardinalities))
    means = np.divide(np.bincount(position, coefficients * counts, minlength=len(cardinalities)), totals,
                      out=np.zeros(len(cardinalities)), where=totals > 0)
    return np.where(counts > 0, coefficients - means[position], math.nan)


def bootstrap_effects(x: np.ndarray, y: np.ndarray, cardinalities: Sequence[int], ridge: float,
                      resamples: int, seed: int) -> np.ndarray:
    """(resamples, columns) effects, each refitted on n candidates drawn with replacement.
    A draw is a row weight (how often each candidate was drawn): the same fit as
    the stacked rows, without copying them."""
    rng = np.random.default_rng(seed)
    n = len(y)
    return np.array([effects(x, y, np.bincount(rng.integers(n, size=n), minlength=n).astype(float),
                             cardinalities, ridge) for _ in range(resamples)]).reshape(resamples, x.shape[1])


def operation_importance(genomes: Sequence[Sequence[int]], scores: Sequence[float], space_or_labels: Any,
                         ridge: float = 1.0, bootstrap: int = 200, seed: int = 0) -> list[dict[str, Any]]:
    """One row per (position, choice), in genome order then value order:
    {position, choice, effect, std, low, high, count}.

    With a space, a gene it says is inactive in a genome (`active_genes`: a chain
    pool's filters) counts for no choice of that candidate.

    `effect` is in the units of `scores` (val_acc in %: points of accuracy);
    `std`, `low` and `high` are the bootstrap spread and 90 % interval (NaN where
    fewer than two resamples hold the choice); `count` is how many candidates with
    a finite score have the choice (0: effect NaN, nothing was learnt). Fewer than
    two finite scores give no rows: there is nothing to compare.
    """
    labels = labels_of(space_or_labels)
    cards = [len(values) for _, values in labels]
    g, y, kept = finite(genomes, scores, cards)
    if len(y) < 2:
        return []
    x = one_hot(g, cards)
    if hasattr(space_or_labels, "active_genes"):
        # A gene the network does not use is no choice: its columns stay 0 in that row.
        active = np.asarray([space_or_labels.active_genes(genomes[i]) for i in kept], dtype=float)
        x *= np.repeat(active, cards, axis=1)
    point = effects(x, y, np.ones(len(y)), cards, ridge)
    draws = bootstrap_effects(x, y, cards, ridge, bootstrap, seed)
    present = (~np.isnan(draws)).sum(0)
    spread = np.full(x.shape[1], math.nan)
    low, high = spread.copy(), spread.copy()
    for j in np.flatnonzero(present >= 2):  # a choice drawn in fewer resamples has no spread to tell
        column = draws[~np.isnan(draws[:, j]), j]
        spread[j] = column.std(ddof=1)
        low[j], high[j] = np.percentile(column, INTERVAL)
    counts = x.sum(0)
    names = [(position, choice) for position, values in labels for choice in values]
    return [{"position": position, "choice": choice, "effect": float(point[j]), "std": float(spread[j]),
             "low": float(low[j]), "high": float(high[j]), "count": int(counts[j])}
            for j, (position, choice) in enumerate(names)]


def fitted(rows: Sequence[dict[str, Any]]) -> int:
    """How many candidates an importance table was fitted on, from its counts: a
    position every candidate uses (nb201's edges, a chain slot's type) counts each
    once, and none counts more."""
    totals: dict[str, float] = {}
    for r in rows:
        totals[str(r["position"])] = totals.get(str(r["position"]), 0.0) + float(r["count"])
    return int(max(totals.values(), default=0))
