"""nas/objectives.py: signed values, the best row, the best so far, the metric registry."""

from __future__ import annotations

import math

import pytest

from nas.objectives import (
    ObjectiveError, best_row, best_so_far, fitness, label, metric, register, resolve, reported_on_test, values,
)
from nas.tasks import task_class

task_class("digits")  # registers the classification metrics
MAX_ACC = [{"metric": "val_acc", "direction": "max"}]
MIN_LOSS = [{"metric": "val_loss", "direction": "min"}]

ROWS = [
    {"status": "ok", "val_acc": "90.5", "val_loss": "0.4"},
    {"status": "diverged", "val_acc": "", "val_loss": ""},
    {"status": "ok", "val_acc": 95.0, "val_loss": 0.6},
    {"status": "ok", "val_acc": 95.0, "val_loss": 0.3},
    {"status": "ok", "val_acc": "nan", "val_loss": "inf"},
]


def test_values_are_signed_so_that_larger_is_better():
    assert values(ROWS[0], MAX_ACC) == (90.5,)
    assert values(ROWS[0], MIN_LOSS) == (-0.4,)
    assert values(ROWS[0], MAX_ACC + MIN_LOSS) == (90.5, -0.4)
    assert fitness(ROWS[2], MAX_ACC) == 95.0


@pytest.mark.parametrize("row", [ROWS[1], ROWS[4], {"status": "oom", "val_acc": 99.0}, {"status": "ok"}])
def test_a_failed_candidate_is_minus_infinity_everywhere(row):
    assert values(row, MAX_ACC + MIN_LOSS) == (-math.inf, -math.inf)


def test_best_row_takes_the_direction_and_the_earliest_of_a_tie():
    assert best_row(ROWS, MAX_ACC) is ROWS[2]  # 95.0 twice: the first wins
    assert best_row(ROWS, MIN_LOSS) is ROWS[3]
    assert best_row([ROWS[1], ROWS[4]], MAX_ACC) is None


def test_best_so_far_is_in_the_metric_s_own_units():
    assert best_so_far(ROWS, MAX_ACC)[1:] == [90.5, 95.0, 95.0, 95.0]
    assert best_so_far(ROWS, MIN_LOSS) == [0.4, 0.4, 0.4, 0.3, 0.3]
    assert math.isnan(best_so_far(ROWS[1:2], MAX_ACC)[0])


def test_the_registry_grows_and_refuses_a_contradiction():
    register("zz_test_speed", "max", "img/s")
    assert metric("zz_test_speed").direction == "max" and label("zz_test_speed") == "zz_test_speed (img/s)"
    register("zz_test_speed", "max")  # the same again: fine
    with pytest.raises(ObjectiveError, match="registered as max, not min"):
        register("zz_test_speed", "min")
    with pytest.raises(ObjectiveError, match="unknown metric 'nope'"):
        metric("nope")
    assert resolve([{"metric": "val_loss"}, {"metric": "val_acc", "direction": "min"}]) == [
        {"metric": "val_loss", "direction": "min"}, {"metric": "val_acc", "direction": "min"}]


def test_test_metrics_are_reported_beside_validation_ones():
    assert reported_on_test("val_acc") == "test_acc" and reported_on_test("params") is None
    assert not metric("test_acc").selectable and metric("val_acc").selectable
