"""Genetic operators: small pure functions over integer genomes.

Each takes its inputs and an explicit numpy Generator and returns new tuples;
nothing is modified in place and nothing touches global random state. They
know nothing of spaces beyond the gene cardinalities and allowed cut points,
so a space checks validity afterwards.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from nas.objectives import rank_and_crowding

Genome = tuple[int, ...]


# -- selection: indices into a population, given its fitnesses (higher is better) --


def tournament(fitness: Sequence[float], size: int, rng: np.random.Generator) -> int:
    """Index of the fittest of `size` members drawn without replacement.

    Ties go to the member that comes first in the population, so the result
    depends only on the draw.
    """
    size = min(size, len(fitness))
    picks = sorted(int(i) for i in rng.choice(len(fitness), size=size, replace=False))
    return max(picks, key=lambda i: (fitness[i], -i))


def roulette(fitness: Sequence[float], rng: np.random.Generator) -> int:
    """Fitness-proportional choice, shifted so the worst finite member has weight ~0.

    Failed members (fitness -inf or nan) get no weight; if nothing has weight,
    the choice is uniform.
    """
    finite = [f for f in fitness if math.isfinite(f)]
    if not finite:
        return int(rng.integers(len(fitness)))
    low, high = min(finite), max(finite)
    # A small floor keeps the worst member selectable, as in textbook roulette.
    floor = (high - low) * 0.01 or 1.0
    weights = np.array([f - low + floor if math.isfinite(f) else 0.0 for f in fitness])
    return int(rng.choice(len(fitness), p=weights / weights.sum()))


def nsga2_select(values: Sequence[Sequence[float]], violations: Sequence[float], k: int) -> list[int]:
    """Indices of the k members NSGA-II keeps (Deb et al. 2002): whole fronts of
    constrained non-dominated sorting, best first, the last one cut by crowding
    distance (largest first); ties by position. `values` are signed (larger is better)."""
    standing = rank_and_crowding(values, violations)
    return sorted(range(len(values)), key=lambda i: (standing[i][0], -standing[i][1], i))[:k]


# A binary tournament on (-front, crowding) -- NSGA-II's crowded-comparison
# selection -- is `tournament(standing, 2, rng)`.


# -- crossover ------------------------------------------------------------------


def multi_point_crossover(
    a: Genome, b: Genome, points: int, rng: np.random.Generator, cut_points: Sequence[int] | None = None
) -> tuple[Genome, Genome]:
    """Exchange alternate segments between `points` distinct cuts.

    `cut_points` limits where cuts may fall (a space may only allow cuts
    between whole layers); by default anywhere between two genes.
    """
    if len(a) != len(b):
        raise ValueError(f"crossover needs genomes of equal length, got {len(a)} and {len(b)}")
    allowed = list(range(1, len(a))) if cut_points is None else sorted(set(cut_points))
    if not allowed:
        return tuple(a), tuple(b)
    cuts = sorted(int(c) for c in rng.choice(allowed, size=min(points, len(allowed)), replace=False))
    child_a, child_b = list(a), list(b)
    swap = False
    bounds = cuts + [len(a)]
    start = 0
    for end in bounds:
        if swap:
            child_a[start:end], child_b[start:end] = b[start:end], a[start:end]
        swap = not swap
        start = end
    return tuple(child_a), tuple(child_b)


# -- mutation -------------------------------------------------------------------


def resample_genes(genome: Genome, cardinalities: Sequence[int], rate: float, rng: np.random.Generator) -> Genome:
    """Bit-flip mutation generalised to integer genes: each gene, with probability
    `rate`, takes a different value drawn uniformly."""
    child = list(genome)
    for i, card in enumerate(cardinalities):
        if card > 1 and rng.random() < rate:
            value = int(rng.integers(card - 1))
            child[i] = value if value < genome[i] else value + 1
    return tuple(child)


def swap_genes(genome: Genome, cardinalities: Sequence[int], rng: np.random.Generator) -> Genome:
    """Exchange the values of two genes that share a value range and differ.

    Returns the genome unchanged when no such pair exists.
    """
    pairs = [
        (i, j)
        for i in range(len(genome))
        for j in range(i + 1, len(genome))
        if cardinalities[i] == cardinalities[j] and genome[i] != genome[j]
    ]
    if not pairs:
        return tuple(genome)
    i, j = pairs[int(rng.integers(len(pairs)))]
    child = list(genome)
    child[i], child[j] = genome[j], genome[i]
    return tuple(child)
