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


def _number(value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return math.nan
    return number


def values(row: Mapping[str, Any], objectives: Sequence[Objective]) -> tuple[float, ...]:
    """Signed objective values of a table row (as written or as read back), larger
    is better; -inf everywhere for a failed candidate."""
    if row.get("status") != "ok":
        return (-math.inf,) * len(objectives)
    out = []
    for objective in objectives:
        value = _number(row.get(objective["metric"]))
        if not math.isfinite(value):
            return (-math.inf,) * len(objectives)
        out.append(_sign(objective) * value)
    return tuple(out)


def fitness(row: Mapping[str, Any], objectives: Sequence[Objective]) -> float:
    """What single-objective selection maximises: the first signed value."""
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
