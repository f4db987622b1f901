"""The knowledge base: every (task, architecture, score) known, in one table.

Sources:
  runs    finished runs: results/{run}/history.tsv (what was evaluated) and
          results/{run}/task.json (which task, its features);
  tables  benchmark tables a user adds: each named column is one task, whose
          features the user may declare.
Runs on the same task (same task id) pool their results; an architecture
evaluated more than once on a task counts with its mean value.

Scores are normalised per task so tasks with different accuracy ranges
compare: z-score over the task's architectures, clipped to [-CLIP, CLIP]; a
failed evaluation (diverged, missing) scores -CLIP. The z-score keeps the
gaps between the best architectures, which a rank would flatten.

Written as knowledge.tsv (task, arch, score, value, count) and tasks.json
({task: features}).
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from nas import layout
from nas.config import load_run
from nas.evaluators.table import TableError, table_delimiter, table_task_id
from nas.io import CorruptArtefact, read_json, read_tsv, write_json, write_tsv
from nas.meta.features import read_task
from nas.meta.settings import measures_the_task
from nas.objectives import fitness, objectives_of

CLIP = 3.0
COLUMNS = ("task", "arch", "score", "value", "count")


@dataclass
class Knowledge:
    tasks: dict[str, dict[str, float]] = field(default_factory=dict)  # task -> features
    values: dict[str, dict[str, list[float]]] = field(default_factory=dict)  # task -> arch -> values

    def add(self, task: str, features: dict[str, float], arch: str, value: float) -> None:
        known = self.tasks.setdefault(task, {})
        known.update(features)
        self.values.setdefault(task, {}).setdefault(arch, []).append(value)

    def scores(self) -> dict[str, dict[str, float]]:
        """task -> arch -> normalised score."""
        return {task: normalise({a: _mean(v) for a, v in archs.items()}) for task, archs in self.values.items()}

    def rows(self) -> list[dict[str, Any]]:
        scores = self.scores()
        return [
            {"task": task, "arch": arch, "score": round(scores[task][arch], 6),
             "value": _mean(values) if math.isfinite(_mean(values)) else None, "count": len(values)}
            for task in sorted(self.values)
            for arch, values in sorted(self.values[task].items())
        ]

    def write(self, folder: str | Path) -> None:
        write_tsv(layout.knowledge_table(folder), COLUMNS, self.rows())
        write_json(layout.knowledge_tasks(folder), {t: self.tasks[t] for t in sorted(self.tasks)})


def _mean(values: Sequence[float]) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return float(np.mean(finite)) if finite else -math.inf


def normalise(values: dict[str, float]) -> dict[str, float]:
    """z-scores of the finite values, clipped; a failed one gets -CLIP."""
    finite = np.array([v for v in values.values() if math.isfinite(v)])
    if len(finite) == 0:
        return {a: -CLIP for a in values}
    mean, std = float(finite.mean()), float(finite.std())
    std = std if std > 0 else 1.0
    return {a: float(np.clip((v - mean) / std, -CLIP, CLIP)) if math.isfinite(v) else -CLIP for a, v in values.items()}


def from_runs(run_dirs: Iterable[str | Path], knowledge: Knowledge | None = None) -> Knowledge:
    """Add each finished run (history.tsv and task.json) to the knowledge base; an
    architecture's value is its signed primary objective (larger is better)."""
    knowledge = knowledge or Knowledge()
    for rdir in run_dirs:
        record = read_task(layout.task_json(rdir))
        objectives = objectives_of(load_run(rdir))
        features = {k: float(v) for k, v in record["features"].items()}
        knowledge.tasks.setdefault(record["task"], {}).update(features)
        for row in read_tsv(layout.history(rdir)):
            knowledge.add(record["task"], features, row["arch"], fitness(row, objectives))
    return knowledge


def finished_runs(results: str | Path) -> list[Path]:
    """Run folders under `results` that have both history.tsv and task.json, of an
    evaluator that measures the task (a proxy's scores are not knowledge)."""
    results = Path(results)
    if not results.is_dir():
        return []
    return sorted(d for d in results.iterdir()
                  if d.is_dir() and Path(layout.history(d)).is_file() and Path(layout.task_json(d)).is_file()
                  and measures_the_task(load_run(d)))


def from_table(
    path: str | Path, arch_column: str, columns: dict[str, dict[str, float] | None],
    knowledge: Knowledge | None = None,
) -> Knowledge:
    """Add the named columns of a benchmark table, each a task ({column: features or None})."""
    knowledge = knowledge or Knowledge()
    path = Path(path)
    if not path.is_file():
        raise TableError(f"table file {path} not found")
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f, delimiter=table_delimiter(path))
        header = reader.fieldnames or []
        for column in (arch_column, *columns):
            if column not in header:
                raise TableError(f"{path} has no column {column!r}; its columns: {', '.join(header)}")
        rows = list(reader)
    for column, features in columns.items():
        task = table_task_id(path, column)
        features = {k: float(v) for k, v in (features or {}).items()}
        knowledge.tasks.setdefault(task, {}).update(features)
        values = knowledge.values.setdefault(task, {})
        for row in rows:
            try:
                value = float(row[column])
            except ValueError:
                value = -math.inf
            values.setdefault(row[arch_column], []).append(value)
    return knowledge


def read_knowledge(folder: str | Path) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, float]]]:
    """(task -> features, task -> arch -> score) of a written knowledge base."""
    folder = Path(folder)
    tasks = read_json(layout.knowledge_tasks(folder))
    if not isinstance(tasks, dict):
        raise CorruptArtefact(layout.knowledge_tasks(folder), "expected {task: features}")
    scores: dict[str, dict[str, float]] = {t: {} for t in tasks}
    for row in read_tsv(layout.knowledge_table(folder)):
        scores.setdefault(row["task"], {})[row["arch"]] = float(row["score"])
    return tasks, scores
