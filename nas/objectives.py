"""What "better" means: metrics with their natural direction, and a run's objectives.

The one home of the question. Tasks and evaluators register the metrics they
write (`register`: name, direction, unit), so the registry grows without
edits here; a run names what it optimises in `objectives: [{metric,
direction}]` (default: its evaluator's primary metric, filled in by
nas.config so that run.yaml says it).

Selection everywhere sees *signed* values, larger is better, as DEAP's
`Fitness.wvalues` are: a metric to minimise enters with its sign flipped, and
a candidate that failed (status other than ok, no value, or a value that is
not finite) gets -inf in every position. `fitness` is the first signed
value; `best_row` and `best_so_far` are the only implementations of "the
best candidate" and "the best so far" (report, inspect, bench and the
meta-learning knowledge base all call them).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence, TypedDict

DIRECTIONS = ("max", "min")


class ObjectiveError(ValueError):
    """An objective that names an unknown metric or direction."""


@dataclass(frozen=True)
class Metric:
    name: str
    direction: str  # "max" or "min": the natural direction
    unit: str = ""  # "%", "s", ... ("" for a count or a plain number)
    description: str = ""
    # False for what is reported but never selected on (test-split metrics).
    selectable: bool = True


class Objective(TypedDict):
    """One entry of a run's `objectives` (as in run.yaml)."""

    metric: str
    direction: str


_METRICS: dict[str, Metric] = {}


def register(name: str, direction: str, unit: str = "", description: str = "", selectable: bool = True) -> Metric:
    """Add a metric (idempotent); a second registration must agree on the direction."""
    if direction not in DIRECTIONS:
        raise ObjectiveError(f"metric {name!r}: direction {direction!r} is not one of {', '.join(DIRECTIONS)}")
    metric = Metric(name, direction, unit, description, selectable)
    known = _METRICS.get(name)
    if known is not None and known.direction != direction:
        raise ObjectiveError(f"metric {name!r} is registered as {known.direction}, not {direction}")
    _METRICS.setdefault(name, metric)
    return _METRICS[name]


def metric(name: str) -> Metric:
    if name not in _METRICS:
        raise ObjectiveError(f"unknown metric {name!r}; known metrics: {', '.join(sorted(_METRICS))}")
    return _METRICS[name]


def known_metrics() -> dict[str, Metric]:
    return dict(_METRICS)


def label(name: str) -> str:
    """A metric as an axis label: `val_acc (%)`."""
    unit = _METRICS[name].unit if name in _METRICS else ""
    return f"{name} ({unit})" if unit else name


# -- a run's objectives ------------------------------------------------------------


def objectives_of(run: Mapping[str, Any]) -> list[Objective]:
    """The run's objectives as run.yaml holds them (nas.config fills the default)."""
    return [Objective(metric=o["metric"], direction=o["direction"]) for o in run["objectives"]]


def primary(objectives: Sequence[Objective]) -> str:
    """The metric of the first objective: what "the" score of a candidate is."""
    return objectives[0]["metric"]


def resolve(entries: Sequence[Mapping[str, Any]]) -> list[Objective]:
    """Entries with each direction filled from the metric's natural one."""
    out = []
    for entry in entries:
        natural = metric(entry["metric"]).direction
        direction = entry.get("direction") or natural
        if direction not in DIRECTIONS:
            raise ObjectiveError(f"direction {direction!r} is not one of {', '.join(DIRECTIONS)}")
        out.append(Objective(metric=entry["metric"], direction=direction))
    return out


def reported_on_test(name: str) -> str | None:
    """The test-split metric reported beside a validation one (val_acc -> test_acc):
    tasks name their split metrics val_<measure> and test_<measure>."""
    return "test_" + name[4:] if name.startswith("val_") else None


def _sign(objective: Objective) -> float:
    return 1.0 if objective["direction"] == "max" else -1.0


def number(value: Any) -> float:
    """A value or a table cell as a float; NaN where there is none (an empty cell, None)."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


# Statuses whose metrics are measured: an infeasible candidate has values (it
# breaks a constraint), a failed one (diverged, oom, missing) has none.
MEASURED = ("ok", "infeasible")


def values(row: Mapping[str, Any], objectives: Sequence[Objective]) -> tuple[float, ...]:
    """Signed objective values of a table row (as written or as read back), larger
    is better; -inf everywhere for a failed candidate."""
    if row.get("status") not in MEASURED:
        return (-math.inf,) * len(objectives)
    out = []
    for objective in objectives:
        value = number(row.get(objective["metric"]))
        if not math.isfinite(value):
            return (-math.inf,) * len(objectives)
        out.append(_sign(objective) * value)
    return tuple(out)


def fitness(row: Mapping[str, Any], objectives: Sequence[Objective]) -> float:
    """The first signed value of an ok (feasible, measured) candidate, -inf for any
    other: what "the best" of a run is judged by."""
    if row.get("status") != "ok":
        return -math.inf
    return values(row, objectives[:1])[0]


def natural(value: float, objective: Objective) -> float:
    """A signed value back in the metric's own units."""
    return _sign(objective) * value


def best_row(rows: Sequence[Mapping[str, Any]], objectives: Sequence[Objective]) -> Any:
    """The fittest ok candidate by the primary objective; the earliest wins a tie; None if none is ok."""
    best, best_value = None, -math.inf
    for row in rows:
        value = fitness(row, objectives)
        if value > best_value:
            best, best_value = row, value
    return best


def best_so_far(rows: Sequence[Mapping[str, Any]], objectives: Sequence[Objective]) -> list[float]:
    """The primary metric of the best candidate after each evaluation, in the
    metric's units (nan before the first ok one)."""
    out, best = [], -math.inf
    for row in rows:
        best = max(best, fitness(row, objectives))
        out.append(natural(best, objectives[0]) if best > -math.inf else math.nan)
    return out


# -- constraints ------------------------------------------------------------------


class Constraint(TypedDict, total=False):
    """One bound of a run's `constraints` (run.yaml: {metric: {max: X} or {min: X}})."""

    metric: str
    min: float
    max: float


def constraints_of(run: Mapping[str, Any]) -> list[Constraint]:
    """The run's constraints as a list, in the order of run.yaml's mapping."""
    out = []
    for name, bounds in (run.get("constraints") or {}).items():
        out.append(Constraint(metric=name, **{k: float(v) for k, v in bounds.items()}))
    return out


def violation(row: Mapping[str, Any], constraints: Sequence[Constraint]) -> float:
    """How far a candidate breaks the constraints: the sum over them of the excess
    relative to the bound (|bound|, or 1 for a bound of 0); 0 when feasible.
    A constrained metric without a value counts as infinitely far."""
    total = 0.0
    for c in constraints:
        value = number(row.get(c["metric"]))
        if not math.isfinite(value):
            return math.inf
        for bound, excess in (("max", value - c.get("max", math.inf)), ("min", c.get("min", -math.inf) - value)):
            if bound in c and excess > 0:
                total += excess / (abs(c[bound]) or 1.0)
    return total


def feasible(row: Mapping[str, Any], constraints: Sequence[Constraint]) -> bool:
    return violation(row, constraints) == 0.0


def describe_constraints(constraints: Sequence[Constraint]) -> str:
    """The constraints as a person reads them: `params min 1500, max 9000, latency_ms max 4`."""
    return ", ".join(f"{c['metric']} " + ", ".join(f"{k} {c[k]:g}" for k in ("min", "max") if k in c)
                     for c in constraints)


# -- Pareto fronts (Deb et al. 2002, "A fast and elitist multiobjective genetic algorithm: NSGA-II") --


def dominates(a: Sequence[float], b: Sequence[float]) -> bool:
    """Signed values (larger is better): a is no worse anywhere and better somewhere."""
    return all(x >= y for x, y in zip(a, b)) and any(x > y for x, y in zip(a, b))


def constrained_dominates(a: Sequence[float], va: float, b: Sequence[float], vb: float) -> bool:
    """Deb's constrained domination: a feasible candidate beats an infeasible one, of
    two infeasible ones the smaller violation wins, of two feasible ones Pareto decides."""
    if va == 0 and vb > 0:
        return True
    if va > 0 or vb > 0:
        return va < vb
    return dominates(a, b)


def nondominated_ranks(values: Sequence[Sequence[float]], violations: Sequence[float] | None = None) -> list[int]:
    """Front index of each member (0: non-dominated), by fast non-dominated sorting
    under constrained domination. A member with a non-finite value (failed) is in
    the last front."""
    n = len(values)
    violations = [0.0] * n if violations is None else list(violations)
    failed = [not all(math.isfinite(v) for v in vals) for vals in values]
    beats: list[list[int]] = [[] for _ in range(n)]
    beaten = [0] * n
    for i in range(n):
        for j in range(i + 1, n):
            if failed[i] or failed[j]:
                continue
            if constrained_dominates(values[i], violations[i], values[j], violations[j]):
                beats[i].append(j)
                beaten[j] += 1
            elif constrained_dominates(values[j], violations[j], values[i], violations[i]):
                beats[j].append(i)
                beaten[i] += 1
    ranks = [-1] * n
    front = [i for i in range(n) if beaten[i] == 0 and not failed[i]]
    rank = 0
    while front:
        nxt = []
        for i in front:
            ranks[i] = rank
            for j in beats[i]:
                beaten[j] -= 1
                if beaten[j] == 0:
                    nxt.append(j)
        front, rank = sorted(nxt), rank + 1
    return [rank if r < 0 else r for r in ranks]


def crowding(values: Sequence[Sequence[float]], members: Sequence[int]) -> dict[int, float]:
    """Crowding distance of each member of one front: the normalised size of the box
    its neighbours span, summed over objectives; the extremes get infinity."""
    out = {i: 0.0 for i in members}
    if len(members) <= 2:
        return {i: math.inf for i in members}
    for k in range(len(values[members[0]])):
        order = sorted(members, key=lambda i: (values[i][k], i))
        low, high = values[order[0]][k], values[order[-1]][k]
        out[order[0]] = out[order[-1]] = math.inf
        if high == low:
            continue
        for a, b, c in zip(order, order[1:], order[2:]):
            out[b] += (values[c][k] - values[a][k]) / (high - low)
    return out


def rank_and_crowding(values: Sequence[Sequence[float]], violations: Sequence[float] | None = None
                      ) -> list[tuple[int, float]]:
    """(front index, crowding distance) of every member: what NSGA-II selects on."""
    ranks = nondominated_ranks(values, violations)
    spread: dict[int, float] = {}
    for r in sorted(set(ranks)):
        spread.update(crowding(values, [i for i, x in enumerate(ranks) if x == r]))
    return [(ranks[i], spread[i]) for i in range(len(values))]


def nondominated(points: Sequence[Sequence[float]]) -> list[int]:
    """Indices of the non-dominated points (signed, larger is better), in their
    order; of equal points the first. O(n x front): a point is only dominated by
    points that sort before it lexicographically, from largest."""
    order = sorted(range(len(points)), key=lambda i: (tuple(-x for x in points[i]), i))
    kept: list[int] = []
    for i in order:
        p = points[i]
        if not any(tuple(points[j]) == tuple(p) or dominates(points[j], p) for j in kept):
            kept.append(i)
    return sorted(kept)


def pareto_rows(rows: Sequence[Mapping[str, Any]], objectives: Sequence[Objective],
                constraints: Sequence[Constraint] = ()) -> list[Any]:
    """The feasible, ok, non-dominated rows, in their order; of rows with equal values the first."""
    ok = [r for r in rows if r.get("status") == "ok" and feasible(r, constraints)
          and all(math.isfinite(v) for v in values(r, objectives))]
    return [ok[i] for i in nondominated([values(r, objectives) for r in ok])]


# -- hypervolume ---------------------------------------------------------------------


def normalised(points: Sequence[Sequence[float]], ideal: Sequence[float], nadir: Sequence[float]) -> list[tuple]:
    """Signed points scaled so that the ideal is 1 and the nadir 0 in every objective."""
    return [tuple((p - n) / (i - n) if i != n else 0.0 for p, i, n in zip(point, ideal, nadir)) for point in points]


def hypervolume(points: Sequence[Sequence[float]], reference: Sequence[float]) -> float:
    """The volume that signed points (larger is better) dominate above `reference`,
    exactly, by slicing along the first objective (fronts are small)."""
    pts = [tuple(p) for p in points if all(x > r for x, r in zip(p, reference))]
    if not pts:
        return 0.0
    if len(reference) == 1:
        return max(p[0] for p in pts) - reference[0]
    pts.sort(key=lambda p: -p[0])
    volume = 0.0
    for k, p in enumerate(pts):
        below = pts[k + 1][0] if k + 1 < len(pts) else reference[0]
        if p[0] > below:
            volume += (p[0] - below) * hypervolume([q[1:] for q in pts[: k + 1]], reference[1:])
    return volume


def hypervolume_gains(front: Sequence[Sequence[float]], candidates: Sequence[Sequence[float]],
                      reference: Sequence[float]) -> list[float]:
    """What each candidate alone would add to the front's hypervolume above
    `reference` (signed points). Two objectives: exactly, all candidates at once
    along the front's staircase; more: one exact hypervolume per candidate."""
    if len(reference) != 2:
        base = hypervolume(front, reference)
        return [hypervolume([*front, c], reference) - base for c in candidates]
    r0, r1 = reference
    steps = sorted(((p[0] - r0, p[1] - r1) for p in front if p[0] > r0 and p[1] > r1), key=lambda p: -p[0])
    # The staircase the front dominates: height h_k between x_{k+1} and x_k.
    edges, heights, best = [math.inf], [0.0], 0.0
    for x, y in steps:
        edges.append(x)
        best = max(best, y)
        heights.append(best)
    edges.append(0.0)
    gains = []
    for c in candidates:
        x, y = c[0] - r0, c[1] - r1
        gain = 0.0
        for k, h in enumerate(heights):
            width = min(x, edges[k]) - edges[k + 1]
            if width > 0 and y > h:
                gain += width * (y - h)
        gains.append(gain)
    return gains


def front_hypervolume(rows: Sequence[Mapping[str, Any]], objectives: Sequence[Objective],
                      constraints: Sequence[Constraint], ideal: Sequence[float], nadir: Sequence[float]) -> float:
    """Hypervolume of the rows' feasible front in the space normalised by (ideal, nadir),
    the reference point the nadir (signed values)."""
    front = [values(r, objectives) for r in pareto_rows(rows, objectives, constraints)]
    return hypervolume(normalised(front, ideal, nadir), [0.0] * len(objectives))


def ideal_and_nadir(points: Sequence[Sequence[float]]) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Of signed front points: the best and the worst value of each objective."""
    return tuple(map(max, zip(*points))), tuple(map(min, zip(*points)))


# -- picking one model from a front ---------------------------------------------------


def pick(rows: Sequence[Mapping[str, Any]], objectives: Sequence[Objective], constraints: Sequence[Constraint],
         rule: str) -> Any:
    """One row of the feasible front by a rule: `max:METRIC` / `min:METRIC` (the best
    front member by that metric), or `knee` (the member closest to the ideal point
    once the front is normalised by its own ideal and nadir). None without a front."""
    front = pareto_rows(rows, objectives, constraints)
    if not front:
        return None
    if rule == "knee":
        vals = [values(r, objectives) for r in front]
        ideal, nadir = ideal_and_nadir(vals)
        scaled = normalised(vals, ideal, nadir)
        return front[min(range(len(front)), key=lambda i: (sum((1 - x) ** 2 for x in scaled[i]), i))]
    way, _, name = rule.partition(":")
    if way not in DIRECTIONS or not name:
        raise ObjectiveError(f"pick rule {rule!r}: use max:METRIC, min:METRIC or knee")
    sign = 1.0 if way == "max" else -1.0
    return max(front, key=lambda r: (sign * number(r.get(name)), -front.index(r)))


def top_rows(rows: Sequence[Mapping[str, Any]], objectives: Sequence[Objective], constraints: Sequence[Constraint],
             k: int, rule: str | None = None) -> list[Any]:
    """The k rows a final re-training takes, best first: under one objective the
    fittest ok and feasible rows (the earliest wins a tie); under several, `rule`'s
    pick from the feasible front, then its pick from the front of the rest, and so on."""
    if len(objectives) == 1:
        ok = [r for r in rows if r.get("status") == "ok" and feasible(r, constraints)
              and math.isfinite(fitness(r, objectives))]
        return sorted(ok, key=lambda r: -fitness(r, objectives))[:k]
    left, out = list(rows), []
    while len(out) < k:
        chosen = pick(left, objectives, constraints, rule or "knee")
        if chosen is None:
            break
        out.append(chosen)
        left = [r for r in left if r is not chosen]
    return out


def hypervolume_bounds(front: Sequence[Sequence[float]], objectives: Sequence[Objective],
                       reference_point: Mapping[str, float] | None = None) -> tuple[tuple, tuple]:
    """(ideal, nadir), signed, that a run's hypervolume is normalised by: the front's
    own best and worst values, the nadir replaced by `reference_point` (natural
    units, per metric) where one is given."""
    ideal, nadir = ideal_and_nadir(front)
    if reference_point:
        nadir = tuple(_sign(o) * float(reference_point[o["metric"]]) if o["metric"] in reference_point else n
                      for o, n in zip(objectives, nadir))
    return ideal, nadir
