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


# Latency columns, written after the cost columns when evaluator.latency is set.
LATENCY_COLUMNS = ("latency_ms", "latency_batch_ms", "latency_device", "latency_load")


class TrainEvaluator(Evaluator):
    """One job per candidate: the task's model trained with the run's recipe.

    Option `latency` ({batch_size, warmup, repeats, cpu}): after training,
    time the forward pass on the training device (latency_ms for one image,
    latency_batch_ms for a batch), and with cpu: true on the CPU
    (latency_cpu_ms); latency_device names the device and latency_load is the
    machine's one-minute load average just before, since other jobs on the
    same machine slow a measurement down."""

    name = "train"
    options = {"latency": None}
    needs_torch = True
    cheap_metrics = ("params", "flops")
    trains = True

    def __init__(self, cfg: dict[str, Any], task: dict[str, Any] | None = None, repeats: int = 1) -> None:
        super().__init__(cfg, task, repeats)
        self.task = task_for(self.task_cfg)
        self.metrics = self.task.metrics
        self.epoch_columns = epoch_table_columns(self.task.epoch_columns)
        self.primary = self.task.primary
        self.latency = self.cfg.get("latency")
        self.produces = (*(m.name for m in self.metrics), "params", "flops", "train_seconds",
                         *self._latency_metrics())

    def _latency_metrics(self) -> tuple[str, ...]:
        if self.latency is None:
            return ()
        return ("latency_ms", "latency_batch_ms", *(("latency_cpu_ms",) if self.latency.get("cpu") else ()))

    @property
    def varying_metrics(self) -> tuple[str, ...]:
        return (*super().varying_metrics, *self._latency_metrics())

    @property
    def columns(self) -> tuple[str, ...]:
        if self.latency is None:
            return super().columns
        cpu = ("latency_cpu_ms",) if self.latency.get("cpu") else ()
        return (*super().columns, *LATENCY_COLUMNS, *cpu)

    def resolved(self) -> dict[str, Any]:
        out = {"name": self.name}
        if self.latency is not None:
            out["latency"] = dict(self.latency)  # its defaults filled by the config schema
        return out

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
        `out_dir` after each epoch and resume from one found there. The task's
        pictures of the trained network go to `out_dir` too (segmentation)."""
        return load(TRAINING_LOOP)(spec, self, checkpoint_dir=out_dir if checkpoint else None, out_dir=out_dir)
