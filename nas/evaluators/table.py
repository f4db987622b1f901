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
from nas.objectives import known_metrics
from nas.spaces.base import Genome, SearchSpace
from nas.tasks.classification import ClassificationTask

# What every table row becomes: these columns of a metrics file, in this order;
# metrics mapped beyond them (latency_ms, ...) follow.
COLUMNS = ("status", *(m.name for m in ClassificationTask.metrics), *COST_COLUMNS)
DEFAULT_ARCH_COLUMN = "ArchitectureString"
# The first form of the options, still accepted: one table, validation and test columns.
SINGLE = ("path", "arch_column", "val_column", "test_column")


class TableError(EvaluatorError):
    """A table that is missing or lacks the columns the config names."""


@dataclass(frozen=True)
class Layout:
    """Where each metric comes from: tables (path, arch column) and metric -> (table, column, scale)."""

    tables: tuple[tuple[str, str], ...]
    columns: tuple[tuple[str, int, str, float], ...]  # (metric, index into tables, column, scale)


@dataclass(frozen=True)
class Table:
    """Every metric of every architecture of the joined tables (an architecture is
    in it when every table has it)."""

    columns: tuple[str, ...]  # the metrics file's keys
    values: dict[str, dict[str, float]]  # metric -> arch -> value

    @property
    def archs(self) -> set[str]:
        first = next(iter(self.values.values()), {})
        return {a for a in first if all(a in v for v in self.values.values())}

    def metrics(self, arch: str) -> dict[str, Any]:
        """Metrics of one architecture; status `missing` when a table lacks it."""
        found = all(arch in v for v in self.values.values())
        metrics: dict[str, Any] = dict.fromkeys(self.columns)
        metrics.update({m: v.get(arch, math.nan) for m, v in self.values.items()})
        metrics.update(status="ok" if found else "missing", train_seconds=0.0, epochs=0, device="table")
        return metrics

    @property
    def val(self) -> dict[str, float]:
        """The validation accuracy of every architecture (what a single-objective search selects on)."""
        return self.values.get("val_acc", {})


def table_delimiter(path: Path) -> str:
    return "\t" if path.suffix.lower() in (".tsv", ".tab") else ","


def _header(path: Path, key: str) -> list[str]:
    if not path.is_file():
        raise TableError(f"table file {path} not found", key)
    with open(path, newline="", encoding="utf-8") as f:
        return next(csv.reader(f, delimiter=table_delimiter(path)), [])


def layout_of(cfg: dict[str, Any]) -> Layout:
    """The tables and the column of each metric, checked against the files' headers.

    Either the first form (`path`, `arch_column`, `val_column`, optional
    `test_column`: val_acc and test_acc) or `tables` + `columns` (a metric ->
    its column, or {column, scale}); each column is looked for in the tables in order."""
    if cfg.get("tables") or cfg.get("columns"):
        mixed = [k for k in SINGLE if cfg.get(k)]
        if mixed:
            raise TableError(f"give either path/arch_column/val_column/test_column or tables/columns, not both "
                             f"({mixed[0]} with tables/columns)", mixed[0])
        if not cfg.get("tables"):
            raise TableError("the table evaluator needs `tables` with `columns`", "tables")
        if not cfg.get("columns"):
            raise TableError("the table evaluator needs `columns` with `tables`", "columns")
        tables = tuple((str(t["path"]), t.get("arch_column") or DEFAULT_ARCH_COLUMN) for t in cfg["tables"])
        wanted = {m: (c, 1.0) if isinstance(c, str) else (c["column"], float(c.get("scale", 1.0)))
                  for m, c in cfg["columns"].items()}
        keys = {"tables": "tables", "columns": "columns"}
    else:
        for key in ("path", "arch_column", "val_column"):
            if not cfg.get(key):
                raise TableError(f"the table evaluator needs `{key}`", key)
        tables = ((str(cfg["path"]), cfg["arch_column"]),)
        wanted = {"val_acc": (cfg["val_column"], 1.0), "test_acc": (cfg.get("test_column") or cfg["val_column"], 1.0)}
        keys = {"tables": "path", "columns": "val_column"}
    headers = []
    for path, arch in tables:
        header = _header(Path(path), keys["tables"])
        if arch not in header:
            key = "arch_column" if keys["tables"] == "path" else "tables"
            raise TableError(f"{path} has no column {arch!r}; its columns: {', '.join(header)}", key)
        headers.append(header)
    columns = []
    for name, (column, scale) in wanted.items():
        where = next((i for i, h in enumerate(headers) if column in h), None)
        if where is None:
            key = "test_column" if name == "test_acc" and cfg.get("test_column") else keys["columns"]
            shown = "; ".join(f"{p}: {', '.join(h)}" for (p, _), h in zip(tables, headers))
            raise TableError(f"no table has column {column!r} (for {name}); their columns: {shown}"
                             if len(tables) > 1 else f"{tables[0][0]} has no column {column!r}; its columns: "
                             f"{', '.join(headers[0])}", key)
        columns.append((name, where, column, scale))
    return Layout(tables, tuple(columns))


def check_table(cfg: dict[str, Any]) -> None:
    """Cheap: the files exist and their headers have the named columns."""
    layout_of(cfg)


@lru_cache(maxsize=8)
def load_table(layout: Layout, columns: tuple[str, ...]) -> Table:
    values: dict[str, dict[str, float]] = {name: {} for name, *_ in layout.columns}
    for index, (path, arch_column) in enumerate(layout.tables):
        mine = [(name, column, scale) for name, where, column, scale in layout.columns if where == index]
        with open(path, newline="", encoding="utf-8") as f:
            for row in csv.DictReader(f, delimiter=table_delimiter(Path(path))):
                for name, column, scale in mine:
                    try:
                        values[name][row[arch_column]] = float(row[column]) * scale
                    except ValueError:  # an empty or non-numeric cell: no value
                        values[name][row[arch_column]] = math.nan
    return Table(columns, values)


def table_for(cfg: dict[str, Any]) -> Table:
    layout = layout_of(cfg)
    return load_table(layout, columns_for(layout))


def columns_for(layout: Layout) -> tuple[str, ...]:
    return (*COLUMNS, *(name for name, *_ in layout.columns if name not in COLUMNS))


def table_task_id(path: str | Path, column: str) -> str:
    """The task id of a table column (a run on it, or the column as meta-learning knowledge)."""
    return f"table:{Path(path).name}:{column}"


class TableEvaluator(Evaluator):
    """Look every candidate of a generation up in one job."""

    name = "table"
    options = {"path": None, "arch_column": None, "val_column": None, "test_column": None, "tables": None,
               "columns": None, "cheap": None}
    per_generation = True
    deterministic = True
    how = "looks architectures up"
    metrics = ClassificationTask.metrics
    epoch_columns = epoch_table_columns(ClassificationTask.epoch_columns)

    def __init__(self, cfg: dict[str, Any], task: dict[str, Any] | None = None, repeats: int = 1) -> None:
        super().__init__(cfg, task, repeats)
        # metric -> its column as configured (no file is read for this)
        if self.cfg.get("columns"):
            self.mapped = {m: c if isinstance(c, str) else c["column"] for m, c in self.cfg["columns"].items()}
        else:
            self.mapped = {"val_acc": self.cfg.get("val_column"),
                           "test_acc": self.cfg.get("test_column") or self.cfg.get("val_column")}
        self.produces = tuple(self.mapped)
        self.primary = "val_acc" if "val_acc" in self.mapped else next(iter(self.mapped))
        self.cheap_metrics = tuple(self.cfg.get("cheap") or ())

    @property
    def columns(self) -> tuple[str, ...]:
        return (*COLUMNS, *(m for m in self.mapped if m not in COLUMNS))

    def check(self) -> None:
        super().check()
        known = known_metrics()
        for name in self.mapped:
            if name not in known:
                raise TableError(f"columns: {name!r} is not a metric; known metrics: {', '.join(sorted(known))}",
                                 "columns")
        for name in self.cheap_metrics:
            if name not in self.mapped:
                raise TableError(f"cheap: {name!r} is not one of the table's metrics ({', '.join(self.mapped)})",
                                 "cheap")
        check_table(self.cfg)

    def resolved(self) -> dict[str, Any]:
        if self.cfg.get("tables") or self.cfg.get("columns"):
            tables = [{"path": t["path"], "arch_column": t.get("arch_column") or DEFAULT_ARCH_COLUMN}
                      for t in self.cfg.get("tables") or []]
            return {"name": self.name, "tables": tables, "columns": dict(self.cfg["columns"]),
                    "cheap": list(self.cheap_metrics)}
        out = {"name": self.name, **{k: self.cfg.get(k) for k in SINGLE}}
        out["test_column"] = out["test_column"] or out["val_column"]
        return out

    def task_id(self) -> str:
        first = self.cfg["path"] if self.cfg.get("path") else self.cfg["tables"][0]["path"]
        return table_task_id(first, self.mapped[self.primary])

    def inputs(self) -> list[str]:
        if self.cfg.get("path"):
            return [str(self.cfg["path"])]
        return [str(t["path"]) for t in self.cfg.get("tables") or []]

    def table(self) -> Table:
        """The joined tables, read once per evaluator (the propose step asks per genome)."""
        if not hasattr(self, "_table"):
            self._table = table_for(self.cfg)
        return self._table

    def cheap_values(self, space: SearchSpace, genome: Genome) -> dict[str, float]:
        table = self.table()
        arch = space.to_string(genome)
        return {m: table.values[m].get(arch, math.nan) for m in self.cheap_metrics}

    def evaluate_generation(self, specs, out_dirs) -> list[Evaluation]:
        table = self.table()
        return [Evaluation(table.metrics(spec["arch"])) for spec in specs]
