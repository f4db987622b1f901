"""Metrics looked up in a table of known architectures (a tabular benchmark).

One row per architecture: a column with the architecture string, a column
used as validation accuracy (what the search selects on), optionally one
reported as test accuracy. Lets a strategy be run and compared in seconds
instead of GPU-days. A look-up costs nothing next to starting a process, so
the workflow looks up a whole generation in one job (`per_generation`), a
local one. The table's columns are a classification task's (val_acc,
test_acc; the losses stay empty), and the task is the table's column itself:
its task id is `table:<file name>:<column>`.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from nas.evaluators.base import COST_COLUMNS, Evaluation, Evaluator, EvaluatorError, epoch_table_columns
from nas.tasks.classification import ClassificationTask

# What a table row becomes: these columns of a metrics file, in this order.
COLUMNS = ("status", *(m.name for m in ClassificationTask.metrics), *COST_COLUMNS)


class TableError(EvaluatorError):
    """A table that is missing or lacks the columns the config names."""


@dataclass(frozen=True)
class Table:
    path: str
    val: dict[str, float]
    test: dict[str, float]

    def metrics(self, arch: str) -> dict[str, Any]:
        """Metrics of one architecture; status `missing` when the table lacks it."""
        found = arch in self.val
        metrics: dict[str, Any] = dict.fromkeys(COLUMNS)
        metrics.update(
            status="ok" if found else "missing",
            val_acc=self.val.get(arch, math.nan),
            test_acc=self.test.get(arch, math.nan),
            train_seconds=0.0,
            epochs=0,
            device="table",
        )
        return metrics


def table_delimiter(path: Path) -> str:
    return "\t" if path.suffix.lower() in (".tsv", ".tab") else ","


def _columns(cfg: dict[str, Any]) -> tuple[Path, str, str, str]:
    for key in ("path", "arch_column", "val_column"):
        if not cfg.get(key):
            raise TableError(f"the table evaluator needs `{key}`", key)
    return Path(cfg["path"]), cfg["arch_column"], cfg["val_column"], cfg.get("test_column") or cfg["val_column"]


def check_table(cfg: dict[str, Any]) -> None:
    """Cheap: the file exists and its header has the named columns."""
    path, *columns = _columns(cfg)
    if not path.is_file():
        raise TableError(f"table file {path} not found", "path")
    with open(path, newline="", encoding="utf-8") as f:
        header = next(csv.reader(f, delimiter=table_delimiter(path)), [])
    keys = ("arch_column", "val_column", "test_column" if cfg.get("test_column") else "val_column")
    for key, column in zip(keys, columns):
        if column not in header:
            raise TableError(f"{path} has no column {column!r}; its columns: {', '.join(header)}", key)


@lru_cache(maxsize=8)
def load_table(path: str, arch_column: str, val_column: str, test_column: str) -> Table:
    val: dict[str, float] = {}
    test: dict[str, float] = {}
    with open(path, newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f, delimiter=table_delimiter(Path(path))):
            val[row[arch_column]] = float(row[val_column])
            test[row[arch_column]] = float(row[test_column])
    return Table(path, val, test)


def table_for(cfg: dict[str, Any]) -> Table:
    check_table(cfg)
    path, arch, val, test = _columns(cfg)
    return load_table(str(path), arch, val, test)


def table_task_id(path: str | Path, column: str) -> str:
    """The task id of a table column (a run on it, or the column as meta-learning knowledge)."""
    return f"table:{Path(path).name}:{column}"


class TableEvaluator(Evaluator):
    """Look every candidate of a generation up in one job."""

    name = "table"
    options = {"path": None, "arch_column": None, "val_column": None, "test_column": None}
    per_generation = True
    metrics = ClassificationTask.metrics
    epoch_columns = epoch_table_columns(ClassificationTask.epoch_columns)
    primary = ClassificationTask.primary
    produces = ("val_acc", "test_acc")

    def check(self) -> None:
        super().check()
        check_table(self.cfg)

    def resolved(self) -> dict[str, Any]:
        out = super().resolved()
        out["test_column"] = out["test_column"] or out["val_column"]
        return out

    def task_id(self) -> str:
        return table_task_id(self.cfg["path"], self.cfg["val_column"])

    def inputs(self) -> list[str]:
        return [str(self.cfg["path"])]

    def evaluate_generation(self, specs, out_dirs) -> list[Evaluation]:
        table = table_for(self.cfg)
        return [Evaluation(table.metrics(spec["arch"])) for spec in specs]
