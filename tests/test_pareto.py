"""Multi-objective and constrained search, without files or processes: the Pareto
functions of nas/objectives.py against hand-computed fronts and brute force,
NSGA-II's selection, the propose-time feasibility bound, and the config checks
of objectives and constraints. No torch: only the space, the table and the
digits task's description are built."""

from __future__ import annotations

import itertools
import json
import math
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pytest

from nas.config import ConfigError, resolve_runs
from nas.io import read_json, write_json
from nas.objectives import (
    ObjectiveError,
    constrained_dominates,
    constraints_of,
    crowding,
    dominates,
    feasible,
    hypervolume,
    hypervolume_bounds,
    hypervolume_gains,
    ideal_and_nadir,
    nondominated,
    nondominated_ranks,
    pareto_rows,
    pick,
    rank_and_crowding,
    violation,
)
from nas.runner import run_in_process
from nas.spaces import make_space
from nas.strategies import StrategyError, make_strategy
from nas.strategies.base import MAX_TRIES, Evaluated, Strategy, selection_keys
from nas.strategies.nsga2 import NSGA2
from nas.strategies.operators import nsga2_select, tournament
from nas.strategies.random_search import RandomSearch
from tests.helpers import OPS3, cost_table_run, table_run, write_cost_table, write_nb201_table

INF = math.inf
SEEDS = range(12)


# -- independent reference implementations (no code of nas/) -------------------------


def pareto_dominates(a: Sequence[float], b: Sequence[float]) -> bool:
    a, b = np.asarray(a, float), np.asarray(b, float)
    return bool(np.all(a >= b) and np.any(a > b))


def deb_dominates(a, va, b, vb) -> bool:
    """Deb (2000): feasible beats infeasible, less violation beats more, Pareto among feasible."""
    if va == 0 and vb == 0:
        return pareto_dominates(a, b)
    if va == 0:
        return True
    if vb == 0:
        return False
    return va < vb


def brute_ranks(points: Sequence[Sequence[float]], violations: Sequence[float] | None = None) -> list[int]:
    """Front index by peeling: front k is what nothing left dominates once fronts < k are gone;
    members with a non-finite value after the last front."""
    n = len(points)
    violations = [0.0] * n if violations is None else violations
    failed = {i for i in range(n) if not all(math.isfinite(x) for x in points[i])}
    alive = [i for i in range(n) if i not in failed]
    ranks = [None] * n
    r = 0
    while alive:
        front = [i for i in alive if not any(deb_dominates(points[j], violations[j], points[i], violations[i])
                                             for j in alive if j != i)]
        assert front, "a strict partial order always has a non-dominated member"
        for i in front:
            ranks[i] = r
        alive = [i for i in alive if i not in front]
        r += 1
    return [r if x is None else x for x in ranks]


def exact_hypervolume(points: Sequence[Sequence[float]], reference: Sequence[float]) -> float:
    """Inclusion-exclusion over subsets of the boxes [reference, p] (small sets only)."""
    boxes = [tuple(p) for p in points if all(x > r for x, r in zip(p, reference))]
    total = 0.0
    for k in range(1, len(boxes) + 1):
        for subset in itertools.combinations(boxes, k):
            corner = [min(p[d] for p in subset) for d in range(len(reference))]
            total += (-1) ** (k + 1) * math.prod(c - r for c, r in zip(corner, reference))
    return total


def grid_hypervolume(points: Sequence[Sequence[int]], top: int) -> int:
    """Integer points in [1, top]^d, reference 0: the unit cells whose upper corner a point dominates."""
    d = len(points[0])
    return sum(any(all(p[k] >= c[k] for k in range(d)) for p in points)
               for c in itertools.product(range(1, top + 1), repeat=d))


def monte_carlo_hypervolume(points: np.ndarray, reference: np.ndarray, rng: np.random.Generator,
                            samples: int = 200_000) -> tuple[float, float]:
    """Estimate and its standard error, sampling the box between reference and the ideal."""
    top = points.max(axis=0)
    x = rng.uniform(reference, top, size=(samples, len(reference)))
    covered = np.zeros(samples, dtype=bool)
    for p in points:
        covered |= np.all(x <= p, axis=1)
    box = float(np.prod(top - reference))
    share = covered.mean()
    return box * share, box * math.sqrt(share * (1 - share) / samples)


# -- fast non-dominated sorting -----------------------------------------------------------

# Signed values, larger is better. Fronts by hand:
#   0: (1,5) (2,4) (3,3) (3,3)dup (0,6)     1: (2,2) (1,4) (3,1)     2: (1,1)
POINTS_2D = [(1, 5), (2, 4), (3, 3), (2, 2), (1, 1), (3, 3), (0, 6), (1, 4), (3, 1)]
RANKS_2D = [0, 0, 0, 1, 2, 0, 0, 1, 1]
#   0: (3,3,3) (4,1,1) (1,4,1) (1,1,4) (3,3,3)dup (0,5,0)     1: (2,2,2) (3,1,1)     2: (1,1,1)
POINTS_3D = [(3, 3, 3), (4, 1, 1), (1, 4, 1), (1, 1, 4), (2, 2, 2), (3, 3, 3), (3, 1, 1), (1, 1, 1), (0, 5, 0)]
RANKS_3D = [0, 0, 0, 0, 1, 0, 1, 2, 0]


@pytest.mark.parametrize("points, ranks", [(POINTS_2D, RANKS_2D), (POINTS_3D, RANKS_3D)], ids=["2d", "3d"])
def test_ranks_match_fronts_computed_by_hand(points, ranks):
    assert nondominated_ranks(points) == ranks
    assert brute_ranks(points) == ranks  # the reference agrees with the hand


def test_a_failed_member_comes_after_the_last_front():
    points = [*POINTS_2D, (-INF, -INF), (4, -INF)]
    ranks = nondominated_ranks(points)
    assert ranks[:-2] == RANKS_2D
    assert ranks[-2:] == [3, 3]


def test_ranks_of_nothing_and_of_one():
    assert nondominated_ranks([]) == []
    assert nondominated_ranks([(1.0, 2.0)]) == [0]
    assert nondominated_ranks([(1.0, 2.0)] * 3) == [0, 0, 0]  # equal points do not dominate each other


def _random_points(rng: np.random.Generator, n: int, d: int, integer: bool) -> list[tuple[float, ...]]:
    # Small integers give ties and duplicates; floats the general case.
    values = rng.integers(0, 4, size=(n, d)) if integer else rng.normal(size=(n, d))
    return [tuple(float(x) for x in row) for row in values]


@pytest.mark.parametrize("seed", SEEDS)
def test_ranks_equal_brute_force_on_random_points(seed):
    rng = np.random.default_rng(seed)
    for d in (2, 3, 4):
        for integer in (True, False):
            points = _random_points(rng, int(rng.integers(1, 25)), d, integer)
            assert nondominated_ranks(points) == brute_ranks(points), (d, integer, points)


@pytest.mark.parametrize("seed", SEEDS)
def test_constrained_ranks_equal_brute_force_on_random_points(seed):
    rng = np.random.default_rng(1000 + seed)
    for d in (2, 3):
        points = _random_points(rng, int(rng.integers(2, 25)), d, integer=bool(seed % 2))
        # About half feasible; the others with violations that tie now and then.
        violations = [0.0 if rng.random() < 0.5 else float(rng.integers(1, 4)) / 2 for _ in points]
        if seed % 3 == 0:
            points[0] = (-INF,) * d  # a failed member too
        assert nondominated_ranks(points, violations) == brute_ranks(points, violations), (points, violations)


@pytest.mark.parametrize("seed", SEEDS)
def test_nondominated_is_rank_zero_less_repeated_points(seed):
    rng = np.random.default_rng(2000 + seed)
    for d in (2, 3):
        points = _random_points(rng, int(rng.integers(1, 30)), d, integer=True)
        ranks = nondominated_ranks(points)
        first_of_equal = [i for i in range(len(points)) if points.index(points[i]) == i]
        assert nondominated(points) == [i for i in first_of_equal if ranks[i] == 0]


def test_nondominated_by_hand():
    assert nondominated(POINTS_2D) == [0, 1, 2, 6]  # the duplicate (3,3) at 5: the first of equals only
    assert nondominated(POINTS_3D) == [0, 1, 2, 3, 8]
    assert nondominated([]) == []


# -- constrained domination ---------------------------------------------------------------


def test_feasible_beats_infeasible_whatever_the_values():
    assert constrained_dominates((0, 0), 0.0, (100, 100), 0.01)
    assert not constrained_dominates((100, 100), 0.01, (0, 0), 0.0)


def test_of_two_infeasible_the_smaller_violation_wins():
    assert constrained_dominates((0, 0), 0.2, (9, 9), 0.5)
    assert not constrained_dominates((9, 9), 0.5, (0, 0), 0.2)
    # Equal violations: neither, even where one Pareto-dominates the other.
    assert not constrained_dominates((9, 9), 0.3, (0, 0), 0.3)
    assert not constrained_dominates((0, 0), 0.3, (9, 9), 0.3)
    assert constrained_dominates((0, 0), 5.0, (9, 9), INF)  # a missing constrained metric is infinitely far


def test_of_two_feasible_pareto_decides():
    assert constrained_dominates((2, 1), 0.0, (1, 1), 0.0)
    assert not constrained_dominates((1, 1), 0.0, (2, 1), 0.0)
    assert not constrained_dominates((2, 0), 0.0, (1, 1), 0.0)
    assert not constrained_dominates((1, 1), 0.0, (1, 1), 0.0)
    assert dominates((1, 2, 3), (1, 2, 2)) and not dominates((1, 2, 3), (1, 2, 3))


def test_constrained_ranks_by_hand():
    points = [(10, 10), (0, 0), (5, 5), (1, -1), (7, 7), (-3, -3)]
    violations = [1.0, 0.0, 0.5, 0.0, 0.5, 0.0]
    # Feasible: (0,0) and (1,-1) trade off, (-3,-3) is dominated; then violation 0.5 twice, then 1.0.
    assert nondominated_ranks(points, violations) == [3, 0, 2, 0, 2, 1]


# -- crowding distance ----------------------------------------------------------------------

# A 2-D front (obj0 range 10, obj1 range 20), at scrambled positions among other points.
FRONT = {4: (0, 20), 0: (2, 9), 6: (3, 3), 2: (7, 2), 5: (10, 0)}


def test_crowding_by_hand():
    values = [FRONT.get(i, (-50, -50)) for i in range(7)]
    spread = crowding(values, [6, 2, 0, 5, 4])
    assert set(spread) == {0, 2, 4, 5, 6}
    assert spread[4] == INF and spread[5] == INF
    assert spread[0] == pytest.approx(0.3 + 17 / 20)  # obj0 (3-0)/10, obj1 (20-3)/20
    assert spread[6] == pytest.approx(0.5 + 7 / 20)  # (7-2)/10, (9-2)/20
    assert spread[2] == pytest.approx(0.7 + 3 / 20)  # (10-3)/10, (3-0)/20


def test_crowding_of_two_or_fewer_is_infinite_and_a_flat_objective_adds_nothing():
    assert crowding([(1, 2), (2, 1)], [0, 1]) == {0: INF, 1: INF}
    assert crowding([(1, 2)], [0]) == {0: INF}
    flat = [(x, y, 7.0) for x, y in FRONT.values()]  # a third objective equal on the whole front
    two = crowding([p[:2] for p in flat], list(range(5)))
    three = crowding(flat, list(range(5)))
    interior = [i for i in range(5) if two[i] < INF]
    assert len(interior) == 3 and all(three[i] == pytest.approx(two[i]) for i in interior)


def test_rank_and_crowding_is_per_front():
    values = [(0, 20), (2, 9), (3, 3), (7, 2), (10, 0), (1, 1)]
    standing = rank_and_crowding(values)
    assert [r for r, _ in standing] == [0, 0, 0, 0, 0, 1]
    assert standing[5] == (1, INF)  # alone in its front
    assert standing[2][1] == pytest.approx(0.5 + 7 / 20)


# -- hypervolume ----------------------------------------------------------------------------


def test_hypervolume_by_hand_2d():
    # Larger is better; the volume dominated above the reference (docstring of hypervolume).
    assert hypervolume([(1, 3), (2, 2), (3, 1)], (0, 0)) == pytest.approx(6.0)
    assert hypervolume([(1, 3), (2, 2), (3, 1), (1, 1), (2, 2)], (0, 0)) == pytest.approx(6.0)  # dominated, dup
    assert hypervolume([(3, 1), (1, 3), (2, 2)], (1, 1)) == pytest.approx(1.0)  # on the reference: nothing
    assert hypervolume([(-3, -1), (-2, -2), (-1, -3)], (-4, -4)) == pytest.approx(6.0)  # signed (minimised)
    assert hypervolume([(2, 5)], (0, 0)) == pytest.approx(10.0)
    assert hypervolume([(-1, 5), (5, -1)], (0, 0)) == 0.0  # each below the reference in one objective
    assert hypervolume([], (0, 0)) == 0.0


def test_hypervolume_by_hand_3d():
    assert hypervolume([(2, 1, 1), (1, 2, 1), (1, 1, 2)], (0, 0, 0)) == pytest.approx(4.0)  # 6 - 3 + 1
    assert hypervolume([(3, 1, 1), (1, 3, 1), (1, 1, 3), (2, 2, 2)], (0, 0, 0)) == pytest.approx(11.0)  # 8 + 3
    assert hypervolume([(1, 1, 1)], (0.5, 0.5, 0.5)) == pytest.approx(0.125)
    assert hypervolume([(4,)], (1,)) == pytest.approx(3.0)


@pytest.mark.parametrize("seed", SEEDS)
def test_hypervolume_equals_exact_references_on_random_sets(seed):
    rng = np.random.default_rng(3000 + seed)
    for d in (2, 3):
        # Integer points: the unit cells of the grid, exactly.
        ints = [tuple(int(x) for x in p) for p in rng.integers(1, 6, size=(int(rng.integers(1, 9)), d))]
        assert hypervolume(ints, (0,) * d) == pytest.approx(grid_hypervolume(ints, 5))
        # Float points, some below the reference: inclusion-exclusion.
        reference = tuple(float(x) for x in rng.normal(size=d) * 0.2)
        floats = [tuple(float(x) for x in p) for p in rng.uniform(-0.3, 1.0, size=(int(rng.integers(1, 9)), d))]
        assert hypervolume(floats, reference) == pytest.approx(exact_hypervolume(floats, reference), abs=1e-12)


@pytest.mark.parametrize("d", [2, 3])
def test_hypervolume_agrees_with_monte_carlo(d):
    rng = np.random.default_rng(40 + d)
    points = rng.uniform(0.1, 1.0, size=(7, d))
    estimate, error = monte_carlo_hypervolume(points, np.zeros(d), rng)
    assert hypervolume([tuple(p) for p in points], (0.0,) * d) == pytest.approx(estimate, abs=5 * error)


@pytest.mark.parametrize("seed", SEEDS)
def test_hypervolume_gains_are_what_each_candidate_adds(seed):
    rng = np.random.default_rng(4000 + seed)
    for d in (2, 3):
        reference = tuple(float(x) for x in rng.integers(-1, 2, size=d))
        front = [tuple(float(x) for x in p) for p in rng.integers(-1, 6, size=(int(rng.integers(0, 7)), d))]
        candidates = [tuple(float(x) for x in p) for p in rng.integers(-2, 7, size=(8, d))]
        candidates += front[:1]  # a point of the front adds nothing
        gains = hypervolume_gains(front, candidates, reference)
        base = exact_hypervolume(front, reference)
        expected = [exact_hypervolume([*front, c], reference) - base for c in candidates]
        assert gains == pytest.approx(expected, abs=1e-9), (front, candidates, reference)
        assert gains == pytest.approx([hypervolume([*front, c], reference) - hypervolume(front, reference)
                                       for c in candidates], abs=1e-9)
        if front:
            assert gains[-1] == pytest.approx(0.0)


def test_hypervolume_gains_by_hand():
    front = [(1, 3), (2, 2), (3, 1)]
    assert hypervolume_gains(front, [(2.5, 2.5), (1, 1), (4, 4), (0.5, 10)], (0, 0)) == pytest.approx(
        [0.5 * 1 + 0.5 * 1.5, 0.0, 16 - 6, 0.5 * 10 - 0.5 * 3])
    assert hypervolume_gains([], [(2, 3), (-1, 3)], (0, 0)) == pytest.approx([6.0, 0.0])


def test_hypervolume_bounds_take_the_reference_point_in_natural_units():
    front = [(90.0, -50.0), (80.0, -20.0), (85.0, -30.0)]
    assert ideal_and_nadir(front) == ((90.0, -20.0), (80.0, -50.0))
    assert hypervolume_bounds(front, OBJ) == ((90.0, -20.0), (80.0, -50.0))
    # params is minimised: a reference of 60 params is the signed -60; val_acc keeps the front's nadir.
    assert hypervolume_bounds(front, OBJ, {"params": 60}) == ((90.0, -20.0), (80.0, -60.0))
    assert hypervolume_bounds(front, OBJ, {"val_acc": 70, "params": 60}) == ((90.0, -20.0), (70.0, -60.0))


# -- violation, feasibility, picking from the front --------------------------------------------


def test_violation_is_the_relative_excess_summed():
    params = [{"metric": "params", "max": 100.0}]
    assert violation({"params": 150}, params) == pytest.approx(0.5)
    assert violation({"params": "150"}, params) == pytest.approx(0.5)  # as read back from a table
    assert violation({"params": 100}, params) == 0.0 and feasible({"params": 100}, params)  # the bound itself
    assert not feasible({"params": 101}, params)
    accuracy = [{"metric": "val_acc", "min": 80.0}]
    assert violation({"val_acc": 60}, accuracy) == pytest.approx(0.25)
    assert feasible({"val_acc": 80.5}, accuracy)
    band = [{"metric": "latency_ms", "min": 2.0, "max": 4.0}]
    assert violation({"latency_ms": 5}, band) == pytest.approx(0.25)
    assert violation({"latency_ms": 1}, band) == pytest.approx(0.5)
    assert feasible({"latency_ms": 3}, band)
    assert violation({"x": 2}, [{"metric": "x", "max": 0.0}]) == pytest.approx(2.0)  # a bound of 0: absolute
    both = params + band
    assert violation({"params": 150, "latency_ms": 5}, both) == pytest.approx(0.75)
    for missing in ({"params": 150}, {"params": 50, "latency_ms": None}, {"params": 50, "latency_ms": ""},
                    {"params": 50, "latency_ms": float("nan")}):
        assert violation(missing, both) == INF and not feasible(missing, both)
    assert violation({"params": 10**9}, []) == 0.0


def test_constraints_of_a_run():
    run = {"constraints": {"params": {"max": 100}, "latency_ms": {"min": 1, "max": 5}}}
    assert constraints_of(run) == [{"metric": "params", "max": 100.0},
                                   {"metric": "latency_ms", "min": 1.0, "max": 5.0}]
    assert constraints_of({}) == []


OBJ = [{"metric": "val_acc", "direction": "max"}, {"metric": "params", "direction": "min"}]
PARAMS_60 = [{"metric": "params", "max": 60.0}]
ROWS = [
    {"status": "ok", "val_acc": "90", "params": "50"},  # 0 front
    {"status": "ok", "val_acc": "95", "params": "80"},  # 1 breaks params <= 60 (status not yet set)
    {"status": "infeasible", "val_acc": "99", "params": "10"},  # 2 broke a measured constraint
    {"status": "ok", "val_acc": "80", "params": "20"},  # 3 front, the knee
    {"status": "ok", "val_acc": "70", "params": "10"},  # 4 front
    {"status": "diverged", "val_acc": "", "params": "30"},  # 5 failed
    {"status": "ok", "val_acc": "85", "params": "40"},  # 6 front
    {"status": "ok", "val_acc": "75", "params": "40"},  # 7 dominated by 6
    {"status": "ok", "val_acc": "80", "params": "20"},  # 8 equal to 3: only the first is in the front
]


def test_pareto_rows_are_feasible_ok_and_non_dominated():
    assert pareto_rows(ROWS, OBJ, PARAMS_60) == [ROWS[i] for i in (0, 3, 4, 6)]
    assert pareto_rows(ROWS, OBJ) == [ROWS[i] for i in (0, 1, 3, 4, 6)]


def test_pick_by_a_metric_and_the_knee():
    assert pick(ROWS, OBJ, PARAMS_60, "max:val_acc") is ROWS[0]  # not 1 (too big) nor 2 (infeasible)
    assert pick(ROWS, OBJ, [], "max:val_acc") is ROWS[1]
    assert pick(ROWS, OBJ, PARAMS_60, "min:params") is ROWS[4]
    # Normalised by the front's ideal (90, 10) and nadir (70, 50): 0 -> (1, 0), 3 -> (0.5, 0.75),
    # 4 -> (0, 1), 6 -> (0.75, 0.25); squared distances to (1, 1): 1, 0.3125, 1, 0.625.
    assert pick(ROWS, OBJ, PARAMS_60, "knee") is ROWS[3]
    assert pick([ROWS[2], ROWS[5]], OBJ, PARAMS_60, "knee") is None
    assert pick(ROWS[:1], OBJ, PARAMS_60, "knee") is ROWS[0]
    with pytest.raises(ObjectiveError, match="knee"):
        pick(ROWS, OBJ, PARAMS_60, "best")
    with pytest.raises(ObjectiveError):
        pick(ROWS, OBJ, PARAMS_60, "max:")


# -- NSGA-II selection and its operators -----------------------------------------------------

# Front 0 (crowding: inf, 1.15, 0.85, 0.85, inf), front 1 (inf, 1.15, 0.825, 0.85, inf), then an
# infeasible member with the best values of all, then a failed one; at scrambled positions.
F0 = [(0, 20), (2, 9), (3, 3), (7, 2), (10, 0)]
F1 = [(-1, 19), (1, 8), (2, 2), (6, 1.5), (9, -1)]
POP = [F1[2], F0[3], (50, 50), F1[0], F0[1], (-INF, -INF), F1[4], F0[0], F1[3], F0[4], F1[1], F0[2]]
VIOL = [0.0, 0.0, 0.3, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]
AT = {p: i for i, p in enumerate(POP)}


def test_nsga2_select_takes_whole_fronts_then_the_least_crowded():
    standing = rank_and_crowding(POP, VIOL)
    assert [standing[AT[p]][0] for p in F0] == [0] * 5 and [standing[AT[p]][0] for p in F1] == [1] * 5
    assert standing[AT[(50, 50)]][0] == 2 and standing[AT[(-INF, -INF)]][0] == 3
    assert standing[AT[F1[1]]][1] == pytest.approx(1.15) and standing[AT[F1[2]]][1] == pytest.approx(0.825)
    # Front 0 by crowding, ties by position: inf (7, 9), 1.15 (4), 0.85 (1, 11).
    front0 = [AT[F0[0]], AT[F0[4]], AT[F0[1]], AT[F0[3]], AT[F0[2]]]
    assert nsga2_select(POP, VIOL, 5) == front0
    # The last front cut by crowding: its extremes, then 1.15, then 0.85; 0.825 is left out.
    front1 = [AT[F1[0]], AT[F1[4]], AT[F1[1]], AT[F1[3]]]
    assert nsga2_select(POP, VIOL, 9) == front0 + front1
    everyone = nsga2_select(POP, VIOL, len(POP))
    assert everyone == front0 + front1 + [AT[F1[2]], AT[(50, 50)], AT[(-INF, -INF)]]
    assert all(isinstance(i, int) for i in everyone)


def _members(points: Sequence[tuple], violations: Sequence[float]) -> list[Evaluated]:
    return [Evaluated(f"gen_000/c{i:02d}", f"a{i}", (i,), p[0], values=tuple(p), violation=v)
            for i, (p, v) in enumerate(zip(points, violations))]


def test_binary_tournament_prefers_lower_rank_then_larger_crowding():
    keys = selection_keys(_members(POP, VIOL))
    standing = rank_and_crowding(POP, VIOL)
    assert keys == [(-float(r), c) for r, c in standing]

    def pair(a, b) -> int:
        return tournament([keys[a], keys[b]], 2, np.random.default_rng(0))

    assert pair(AT[F0[2]], AT[F1[0]]) == 0  # rank 0 (crowding 0.85) beats rank 1 (crowding inf)
    assert pair(AT[F1[0]], AT[F0[2]]) == 1
    assert pair(AT[F1[2]], AT[F1[1]]) == 1  # same front: 1.15 beats 0.825
    assert pair(AT[F1[1]], AT[F1[2]]) == 0
    assert pair(AT[(50, 50)], AT[F1[2]]) == 1  # the infeasible one loses to any feasible one
    assert pair(AT[(-INF, -INF)], AT[(50, 50)]) == 1  # and a failed one to it

    # Over many draws from the whole population: the winner is the better of the two drawn.
    for seed in range(30):
        winner = tournament(keys, 2, np.random.default_rng(seed))
        drawn = sorted(int(i) for i in np.random.default_rng(seed).choice(len(keys), size=2, replace=False))
        other = drawn[1] if winner == drawn[0] else drawn[0]
        assert winner in drawn
        assert standing[winner][0] < standing[other][0] or (
            standing[winner][0] == standing[other][0] and standing[winner][1] >= standing[other][1])


NB201 = {"name": "nb201", "ops": OPS3}


def _nsga2_population(space, rng: np.random.Generator, n: int) -> list[Evaluated]:
    members, seen = [], set()
    while len(members) < n:
        genome = space.canonical(space.sample(rng))
        arch = space.to_string(genome)
        if arch in seen:
            continue
        seen.add(arch)
        acc, cost = float(sum(genome)), -float(sum(g == 2 for g in genome))
        members.append(Evaluated(f"gen_000/c{len(members):02d}", arch, genome, acc, values=(acc, cost),
                                 violation=0.0 if len(members) % 3 else 0.5))
    return members


def test_nsga2_propose_is_deterministic_for_a_seed_and_never_repeats():
    space = make_space(NB201)
    strategy = NSGA2(space, 6)
    strategy.objectives = OBJ
    members = _nsga2_population(space, np.random.default_rng(7), 6)
    state = {"population": [m.to_json() for m in members]}

    def proposals(seed: int):
        return strategy.propose(state, members, 8, np.random.default_rng(seed))

    first = proposals(11)
    assert first == proposals(11)
    assert any(proposals(s) != first for s in (12, 13, 14))
    archs = [p.arch for p in first]
    assert len(set(archs)) == 8 and not set(archs) & {m.arch for m in members}
    keys = {m.key for m in members}
    assert all(set(p.parents) <= keys and p.parents for p in first)
    assert all(space.canonical(p.genome) == p.genome and space.to_string(p.genome) == p.arch for p in first)


def test_nsga2_update_keeps_what_nsga2_select_keeps():
    members = _members(POP, VIOL)
    strategy = NSGA2(make_space(NB201), 9)
    strategy.objectives = OBJ
    state = {"population": [m.to_json() for m in members[:6]], "other": 1}
    new = strategy.update(state, members[6:])
    assert new["other"] == 1
    assert [m["key"] for m in new["population"]] == [members[i].key for i in nsga2_select(POP, VIOL, 9)]


def test_a_state_keeps_each_member_s_violation(tmp_path):
    """What the workflow does between generations: the state goes to state.json and back.
    A member whose constrained metric has no value is infinitely infeasible
    (nas.objectives.violation); read back it must still be infeasible."""
    members = [Evaluated("gen_000/c00", "a", (0,), 1.0, values=(1.0, -2.0), violation=0.25),
               Evaluated("gen_000/c01", "b", (1,), 2.0, values=(2.0, -3.0), violation=INF),
               Evaluated("gen_000/c02", "c", (2,), -INF, values=(-INF, -INF))]
    write_json(tmp_path / "state.json", {"population": [m.to_json() for m in members]})
    back = [Evaluated.from_json(m) for m in read_json(tmp_path / "state.json")["population"]]
    assert [m.violation for m in back] == [0.25, INF, 0.0]
    assert back[2].values == (-INF, -INF)
    assert selection_keys(back) == selection_keys(members)


# -- proposals under a cheap constraint ---------------------------------------------------------


def test_fill_gives_up_with_a_clear_error_after_a_bounded_number_of_draws():
    space = make_space(NB201)
    strategy = RandomSearch(space, 4)
    strategy.feasible = lambda genome: False
    strategy.feasibility = "params max 10"
    draws = []
    sample = space.sample
    space.sample = lambda rng: draws.append(1) or sample(rng)
    start = time.monotonic()
    with pytest.raises(StrategyError) as err:
        strategy.propose({}, [], 3, np.random.default_rng(0))
    assert time.monotonic() - start < 10
    message = str(err.value)
    assert "params max 10" in message and f"{2 * MAX_TRIES} draws" in message and "nb201" in message
    assert len(draws) == 2 * MAX_TRIES  # MAX_TRIES from the strategy's own maker, MAX_TRIES random


def test_fill_keeps_what_is_feasible_and_stops_when_nothing_new_is():
    space = make_space(NB201)
    strategy = RandomSearch(space, 4)
    strategy.feasible = lambda genome: genome[0] == genome[1] == 2
    proposals = strategy.propose({}, [], 5, np.random.default_rng(0))
    assert len({p.arch for p in proposals}) == 5 and all(p.genome[:2] == (2, 2) for p in proposals)
    every = {space.to_string(g) for g in space.all_genomes() if strategy.feasible(g)}
    known_child = next(g for g in space.all_genomes() if strategy.feasible(g))
    calls = []
    start = time.monotonic()
    with pytest.raises(StrategyError, match="meets the constraints"):  # every feasible one is evaluated
        strategy.fill(1, every, np.random.default_rng(0), lambda rng: calls.append(1) or (known_child, "made", ()))
    assert len(calls) == MAX_TRIES and time.monotonic() - start < 10


def test_a_cheap_constraint_no_drawn_architecture_meets_stops_propose(tmp_path):
    """The chain space is too large to enumerate, so the config cannot refuse the
    bound; the first propose does, before anything is evaluated."""
    run = resolve_runs({"runs": {"tiny": {
        "space": {"name": "chain"}, "strategy": {"name": "nsga2"}, "generations": 2,
        "objectives": [{"metric": "val_acc"}, {"metric": "params"}], "constraints": {"params": {"max": 1}},
    }}})["tiny"]

    def evaluate(spec: dict[str, Any]) -> dict[str, Any]:
        raise AssertionError(f"{spec['arch']} was evaluated although it breaks params max 1")

    start = time.monotonic()
    with pytest.raises(StrategyError, match=r"space 'chain': found no new architecture that meets params max 1"):
        run_in_process(run, evaluate)
    assert time.monotonic() - start < 20


def test_a_strategy_of_one_objective_refuses_several():
    class Single(Strategy):
        name = "single"
        multi_objective = False

        def propose(self, state, history, n, rng):
            return []

    strategy = Single(make_space(NB201), 4)
    strategy.check_objectives(OBJ[:1])
    with pytest.raises(StrategyError, match=r"strategy 'single' optimises one objective; 2 are given"):
        strategy.check_objectives(OBJ)
    for name in ("nsga2", "rea", "ga", "random", "ls"):  # these serve several (reinforce: see the workflow tests)
        make_strategy({"name": name}, make_space(NB201), 4).check_objectives(OBJ)


# -- config refusals ---------------------------------------------------------------------------

COST = "<cost>"
PLAIN = "<plain>"


def _cost(**overrides: Any) -> dict[str, Any]:
    return cost_table_run(Path(COST), **overrides)


def _plain(**overrides: Any) -> dict[str, Any]:
    return table_run(Path(PLAIN), **overrides)


TWO = [{"metric": "val_acc"}, {"metric": "params"}]
# (id, run settings, words the message must contain)
REFUSED: list[tuple[str, dict[str, Any], list[str]]] = [
    ("unknown-metric-objective", _cost(objectives=[{"metric": "val_acc"}, {"metric": "top5"}]),
     ["config key runs.bad.objectives.1.metric:", "unknown metric 'top5'", "val_acc"]),
    ("not-produced-objective", _plain(objectives=[{"metric": "val_acc"}, {"metric": "latency_ms"}]),
     ["config key runs.bad.objectives.1.metric:", "evaluator 'table' does not produce 'latency_ms'",
      "val_acc, test_acc"]),
    ("not-produced-constraint", _plain(objectives=TWO[:1], constraints={"params": {"max": 5}}),
     ["config key runs.bad.constraints.params:", "does not produce 'params'"]),
    ("test-acc-objective", _cost(objectives=[{"metric": "test_acc"}, {"metric": "params"}]),
     ["config key runs.bad.objectives.0.metric:", "'test_acc' is reported, never selected on"]),
    ("test-acc-second-objective", _cost(objectives=[{"metric": "val_acc"}, {"metric": "test_acc"}]),
     ["config key runs.bad.objectives.1.metric:", "'test_acc' is reported, never selected on"]),
    ("test-acc-constraint", _cost(constraints={"test_acc": {"min": 50}}),
     ["config key runs.bad.constraints.test_acc:", "'test_acc' is reported, never selected on"]),
    ("unknown-metric-constraint", _cost(constraints={"speed": {"min": 50}}),
     ["config key runs.bad.constraints.speed:", "unknown metric 'speed'"]),
    ("direction-up", _cost(objectives=[{"metric": "val_acc"}, {"metric": "params", "direction": "up"}]),
     ["config key runs.bad.objectives.1.direction:", "'up' is not allowed", "max, min"]),
    ("objective-named-twice", _cost(objectives=[{"metric": "params"}, {"metric": "params", "direction": "max"}]),
     ["config key runs.bad.objectives.1.metric:", "'params' is named twice"]),
    ("constraint-min-above-max", _cost(constraints={"latency_ms": {"min": 5, "max": 2}}),
     ["config key runs.bad.constraints.latency_ms:", "min 5 is above max 2"]),
    ("constraint-unknown-bound", _cost(constraints={"params": {"below": 5}}),
     ["config key runs.bad.constraints.params.below:", "unknown key", "max, min"]),
    ("constraint-bound-not-a-number", _cost(constraints={"params": {"max": "big"}}),
     ["config key runs.bad.constraints.params.max:", "expected number"]),
    ("cheap-constraint-nothing-meets", _cost(constraints={"params": {"max": 10}}),
     ["config key runs.bad.constraints:", "no architecture of space 'nb201' meets params max 10"]),
    ("cheap-band-nothing-meets", _cost(constraints={"params": {"min": 1500, "max": 9000}}),
     ["config key runs.bad.constraints:", "no architecture of space 'nb201' meets params min 1500, max 9000"]),
    ("cheap-constraint-train-evaluator", {"objectives": TWO, "constraints": {"params": {"max": 10}}},
     ["config key runs.bad.constraints:", "no architecture of space 'nb201' meets params max 10"]),
    ("cheap-not-a-table-metric", _cost(evaluator={**_cost()["evaluator"], "cheap": ["flops"]}),
     ["config key runs.bad.evaluator.cheap:", "'flops' is not one of the table's metrics"]),
    ("reference-point-not-an-objective", _cost(reference_point={"latency_ms": 3}),
     ["config key runs.bad.reference_point.latency_ms:", "'latency_ms' is not an objective of the run"]),
]


def _placed(value: Any, cost: Path, plain: Path) -> Any:
    text = json.dumps(value).replace(COST, str(cost)).replace(PLAIN, str(plain))
    return json.loads(text)


@pytest.fixture(scope="module")
def tables(tmp_path_factory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("tables")
    return write_cost_table(folder / "cost.csv"), write_nb201_table(folder / "plain.csv")


@pytest.mark.parametrize("settings, words", [c[1:] for c in REFUSED], ids=[c[0] for c in REFUSED])
def test_objectives_and_constraints_are_refused_naming_the_key(tables, settings, words):
    with pytest.raises(ConfigError) as err:
        resolve_runs({"runs": {"bad": _placed(settings, *tables)}})
    for word in words:
        assert word in str(err.value), f"{word!r} not in: {err.value}"


def test_a_refusal_names_the_defaults_where_the_key_is_set_there(tables):
    run = _placed(_cost(), *tables)
    del run["objectives"]
    config = {"defaults": {"objectives": [{"metric": "val_acc"}, {"metric": "latency_ms", "direction": "sideways"}]},
              "runs": {"bad": run}}
    with pytest.raises(ConfigError, match=r"config key defaults\.objectives\.1\.direction: 'sideways'"):
        resolve_runs(config)


def test_an_empty_constraint_is_refused_as_such(tables):
    """`params: {}` bounds nothing: the message says so, not something about runs."""
    with pytest.raises(ConfigError) as err:
        resolve_runs({"runs": {"bad": _placed(_cost(constraints={"params": {}}), *tables)}})
    message = str(err.value)
    assert "config key runs.bad.constraints.params:" in message
    assert "name at least one run" not in message, message
    assert "min" in message or "max" in message, message


def test_a_latency_not_in_a_table_is_not_blamed_on_a_missing_train_option(tables):
    """The table evaluator takes no `latency` option (it is refused as unknown), so the
    refusal of latency_ms on a table without that column must not suggest setting it."""
    with pytest.raises(ConfigError) as err:
        resolve_runs({"runs": {"bad": _placed(_plain(objectives=[{"metric": "val_acc"}, {"metric": "latency_ms"}]),
                                              *tables)}})
    assert "evaluator.latency" not in str(err.value), str(err.value)
    with pytest.raises(ConfigError, match="takes no option 'latency'"):
        resolve_runs({"runs": {"bad": _placed(_plain(evaluator={**_plain()["evaluator"], "latency": {}}), *tables)}})


def test_accepted_objectives_and_constraints_are_written_out_in_full(tables):
    run = resolve_runs({"runs": {"ok": _placed(_cost(constraints={"params": {"max": 28000},
                                                                  "latency_ms": {"min": 1, "max": 4.0}}), *tables)}})["ok"]
    assert run["objectives"] == [{"metric": "val_acc", "direction": "max"}, {"metric": "params", "direction": "min"}]
    assert run["constraints"] == {"params": {"max": 28000}, "latency_ms": {"min": 1, "max": 4.0}}


# -- local search and reinforce under constraints and several objectives -------------------------


def test_ls_under_constraints_also_swaps_two_genes():
    """A swap keeps the operations' counts (so an nb201 cell's params), moving along a binding budget."""
    from nas.strategies.local_search import LocalSearch
    space = make_space(NB201)
    ls = LocalSearch(space, 4)
    genome = (0, 1, 2, 0, 1, 2)
    plain = ls._neighbours(genome)
    assert plain == space.neighbours(genome)
    ls.constraints = constraints_of({"constraints": {"params": {"max": 1.0}}})
    both = ls._neighbours(genome)
    swaps = both[len(plain):]
    assert both[:len(plain)] == plain and len(set(both)) == len(both)
    # 15 pairs of the 6 genes, less the three pairs of equal values
    assert len(swaps) == 12
    assert all(sorted(s) == sorted(genome) for s in swaps)


def test_ls_guide_tries_neighbours_predicted_to_meet_a_measured_constraint_first():
    from nas.strategies.local_search import LocalSearch
    space = make_space(NB201)
    ls = LocalSearch(space, 4, guide="predictor")
    ls.constraints = constraints_of({"constraints": {"latency_ms": {"max": 1.0}}})
    rng = np.random.default_rng(0)
    history = []
    for k, g in enumerate(space.sample(rng) for _ in range(40)):
        # Gene 0 = 2 breaks the latency bound, and accuracy rises with it.
        breach = 1.0 if g[0] == 2 else 0.0
        history.append(Evaluated(f"gen_000/c{k:02d}", space.to_string(g), g, float(g[0]), violation=breach))
    candidates = [(2, 0, 0, 0, 0, 0), (1, 0, 0, 0, 0, 0), (2, 1, 1, 1, 1, 1), (0, 0, 0, 0, 0, 0)]
    order = ls._order(candidates, history, np.random.default_rng(1))
    assert [candidates[i][0] for i in order] == [1, 0, 2, 2]


def test_reinforce_pareto_reward_is_the_batch_front_rank():
    from nas.strategies.reinforce.gradient import Reinforce
    strategy = Reinforce(make_space(NB201), 4, reward="pareto")
    strategy.objectives = OBJ
    vals = [(3.0, -1.0), (1.0, -3.0), (2.0, -2.0), (1.0, -1.0), (0.5, -3.0)]
    results = [Evaluated(f"gen_001/c{k:02d}", "a", (0,) * 6, v[0], values=v) for k, v in enumerate(vals)]
    results.append(Evaluated("gen_001/c05", "b", (0,) * 6, 9.0, values=(9.0, -9.0), violation=0.5))
    # fronts: {(3,-1)}, {(2,-2), (1,-1)}, {(1,-3)}, {(0.5,-3)}: 1 - rank / 4; infeasible: the worst
    assert strategy._rewards(results) == [1.0, 0.5, 0.75, 0.75, 0.25, 0.25]


SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.mark.skipif(not (SHARED_DATA / "nb201_hardware.csv").exists(), reason="the NB201 tables are not here")
@pytest.mark.parametrize("cost, size", [("CIFAR10ParamsM", 14), ("CIFAR10EyerissLatencyMs", 19)])
def test_the_benchmark_true_fronts_have_the_sizes_the_issue_measured(cost, size):
    """A cross-check on real data where it is at hand: CIFAR-10 accuracy against a cost
    column, by nondominated() and by a 2-D sweep (best accuracy so far, cost ascending)."""
    import csv
    with open(SHARED_DATA / "nb201_accuracy.csv") as f:
        acc = {r["ArchitectureString"]: float(r["CIFAR10TestAccuracy200Epochs"]) for r in csv.DictReader(f)}
    with open(SHARED_DATA / "nb201_hardware.csv") as f:
        spend = {r["ArchitectureString"]: float(r[cost]) for r in csv.DictReader(f)}
    points = sorted({(acc[a], -spend[a]) for a in acc})
    front = {points[i] for i in nondominated(points)}
    swept, best = set(), -INF
    for c, a in sorted(((-p[1], p[0]) for p in points), key=lambda t: (t[0], -t[1])):
        if a > best:
            swept.add((a, -c))
            best = a
    assert front == swept and len(front) == size
