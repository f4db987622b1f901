"""nas/ridge.py: one-hot genes and the ridge normal equations shared by the ls guide and the meta-model."""

from __future__ import annotations

import numpy as np

from nas.ridge import RidgeSystem, one_hot


def test_one_hot_sets_one_column_per_gene():
    x = one_hot([(0, 2), (1, 0)], (2, 3))
    assert x.tolist() == [[1, 0, 0, 0, 1], [0, 1, 1, 0, 0]]


def test_the_system_solves_the_closed_form_ridge():
    rng = np.random.default_rng(0)
    x, y, w = rng.normal(size=(30, 4)), rng.normal(size=30), rng.random(30)
    coef, offset = RidgeSystem(x, y, w).solve(0.5)
    assert offset == np.average(y, weights=w)
    closed = np.linalg.solve(x.T @ np.diag(w) @ x + 0.5 * np.eye(4), x.T @ np.diag(w) @ (y - offset))
    assert np.allclose(coef, closed)
    sub, _ = RidgeSystem(x, y, w).solve(0.5, np.array([0, 2]))
    assert np.allclose(sub, np.linalg.solve((x[:, [0, 2]].T * w) @ x[:, [0, 2]] + 0.5 * np.eye(2),
                                            (x[:, [0, 2]].T * w) @ (y - offset)))
