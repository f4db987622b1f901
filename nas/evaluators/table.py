"""Metrics looked up in a table of known architectures (a tabular benchmark).

One row per architecture: a column with the architecture string, a column
used as validation accuracy (what the search selects on), optionally one
reported as test accuracy. Lets a strategy be run and compared in seconds
instead of GPU-days.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from nas.evaluators import METRIC_KEYS


class TableError(ValueError):
    """A table that is missing or lacks the columns the config names.

    `key` is the evaluator option at fault (path, arch_column, ...), if one is.
    """

    def __init__(self, message: str, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key


@dataclass(frozen=True)
class Table:
    path: str
    val: dict[str, float]
    test: dict[str, float]

    def metrics(self, arch: str) -> dict[str, Any]:
        """Metrics of one architecture; status `missing` when the table lacks it."""
        found = arch in self.val
        metrics = dict.fromkeys(METRIC_KEYS)
        metrics.update(
            status="ok" if found else "missing",
            val_acc=self.val.get(arch, math.nan),
            test_acc=self.test.get(arch, math.nan),
            train_seconds=0.0,
            epochs=0,
            device="table",
        )
        return metrics


def _delimiter(path: Path) -> str:
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
        header = next(csv.reader(f, delimiter=_delimiter(path)), [])
    keys = ("arch_column", "val_column", "test_column" if cfg.get("test_column") else "val_column")
    for key, column in zip(keys, columns):
        if column not in header:
            raise TableError(f"{path} has no column {column!r}; its columns: {', '.join(header)}", key)


@lru_cache(maxsize=8)
def load_table(path: str, arch_column: str, val_column: str, test_column: str) -> Table:
    val: dict[str, float] = {}
    test: dict[str, float] = {}
    with open(path, newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f, delimiter=_delimiter(Path(path))):
            val[row[arch_column]] = float(row[val_column])
            test[row[arch_column]] = float(row[test_column])
    return Table(path, val, test)


def table_for(cfg: dict[str, Any]) -> Table:
    check_table(cfg)
    path, arch, val, test = _columns(cfg)
    return load_table(str(path), arch, val, test)


def evaluate(spec: dict[str, Any]) -> dict[str, Any]:
    return table_for(spec["evaluator"]).metrics(spec["arch"])
