"""Index splits drawn with numpy, shared by every task."""

from __future__ import annotations

import numpy as np


def hold_out(n: int, count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(kept, held-out) indices: `count` of range(n) drawn with `seed`, both sorted."""
    if count >= n:
        raise ValueError(f"cannot hold out {count} of {n} images; lower val_size/test_size")
    order = np.random.default_rng(seed).permutation(n)
    return np.sort(order[count:]), np.sort(order[:count])


def cap(indices: np.ndarray, size: int | None, seed: int) -> np.ndarray:
    """At most `size` of `indices`, drawn with `seed` (all of them for None)."""
    if size is None or size >= len(indices):
        return indices
    picked = np.random.default_rng([seed, 1]).choice(len(indices), size=size, replace=False)
    return np.sort(indices[picked])
