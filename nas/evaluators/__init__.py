"""Evaluators turn a candidate spec into metrics.

`train` trains the network (imports torch); `table` looks the architecture up
in a benchmark table (no torch). Both return the same metric keys.
"""

from __future__ import annotations

METRIC_KEYS = (
    "status",
    "val_acc",
    "test_acc",
    "val_loss",
    "train_loss",
    "params",
    "flops",
    "train_seconds",
    "epochs",
    "device",
)
EVALUATORS = ("train", "table")
