"""Real training: build the candidate's network, train it, measure it.

This is the evaluator's light side (options, columns, task id), importable
without torch; the training loop itself is nas/evaluators/training.py, which
imports torch and is loaded (by name, as registries load classes) only when
a candidate trains.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from nas.evaluators.base import Evaluation, Evaluator, epoch_table_columns
from nas.registry import load
from nas.tasks import Task, task_for

TRAINING_LOOP = "nas.evaluators.training:train"


class TrainEvaluator(Evaluator):
    """One job per candidate: the task's model trained with the run's recipe."""

    name = "train"
    needs_torch = True

    def __init__(self, cfg: dict[str, Any], task: dict[str, Any] | None = None) -> None:
        super().__init__(cfg, task)
        self.task = task_for(self.task_cfg)
        self.metrics = self.task.metrics
        self.epoch_columns = epoch_table_columns(self.task.epoch_columns)
        self.primary = self.task.primary
        self.produces = (*(m.name for m in self.metrics), "params", "flops", "train_seconds")

    def check(self) -> None:
        super().check()
        self.task.check()

    def resolved_task(self) -> dict[str, Any]:
        return self.task.resolved()

    def task_id(self) -> str:
        return self.task.task_id()

    def data_task(self) -> Task:
        return self.task

    def evaluate(self, spec: dict[str, Any], out_dir: str | Path | None = None, checkpoint: bool = False) -> Evaluation:
        """Train the spec's architecture; with `checkpoint`, keep a checkpoint in
        `out_dir` after each epoch and resume from one found there."""
        return load(TRAINING_LOOP)(spec, self, checkpoint_dir=out_dir if checkpoint else None)
