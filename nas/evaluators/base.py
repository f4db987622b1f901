"""What every evaluator offers: candidate specs in, metrics out.

An evaluator is built from a run's (or a spec's) `evaluator` and `task`
sections and is used in two places:

  config time, no torch (the Snakefile, `python -m nas check`, the light steps):
      check()           everything that can be wrong before a job (EvaluatorError)
      resolved()        its section with every default filled in (run.yaml), and
      resolved_task()   the task section likewise
      task_id()         which task the run searched on (meta-learning)
      data_task()       the Task whose data task features are computed from, or
                        None where the evaluator has its own task (a table)
      columns           what metrics.json holds, in table order: status, the
                        task's metrics, then COST_COLUMNS
      table_columns     columns, and with training.repeats > 1 each varying
                        metric's std and the repeat count (nas/evaluators/repeats.py)
      deterministic     the same spec always gives the same metrics (a table):
                        repeats > 1 would only repeat them, and is refused
      trains            it trains networks (a `final:` section needs one that does)
      primary           the default objective
      inputs()          files every evaluation reads (the workflow declares them)
  job time:
      evaluate(spec, out_dir, checkpoint)   one job per candidate (per_generation False), or
      evaluate_generation(specs, out_dirs)  one job per generation (per_generation True)
  Either form works for either kind (the in-process loop calls `evaluate`);
  `per_generation` says which one the workflow runs, and `needs_torch`
  whether its jobs fork from the shared trainer (nas/shared_trainer.py).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Mapping, Sequence

from nas.objectives import Constraint, Metric, register, violation
from nas.options import unknown_option
from nas.tasks import Task

if TYPE_CHECKING:
    from nas.spaces.base import Genome, SearchSpace

PARAMS = register("params", "min", "", "trainable parameters")
FLOPS = register("flops", "min", "", "multiply-accumulates of one forward pass of one image")
# A clock: selecting on it would make a resumed search differ from an uninterrupted one.
TRAIN_SECONDS = register("train_seconds", "min", "s", "wall time of training and evaluation", selectable=False)
# Latencies are clocks too, but what a user of the network pays: they may be selected on.
LATENCY = register("latency_ms", "min", "ms", "time of one forward pass of one image, on the training device")
LATENCY_BATCH = register("latency_batch_ms", "min", "ms", "time of one forward pass of a batch (evaluator.latency)")
LATENCY_CPU = register("latency_cpu_ms", "min", "ms", "time of one forward pass of one image on the CPU")
# Columns every evaluator writes after the task's metrics: cost and bookkeeping.
COST_COLUMNS = ("params", "flops", "train_seconds", "epochs", "device")
# With training.repeats > 1 (nas/evaluators/repeats.py): after every other column,
# each varying metric's std over the repeats, then how many repeats are ok.
REPEATS_COLUMN = "repeats"


def std_column(metric: str) -> str:
    return f"{metric}_std"


def repeats_of(settings: Mapping[str, Any]) -> int:
    """How many trainings a run's (or a spec's) candidates get (training.repeats)."""
    return int((settings.get("training") or {}).get("repeats", 1))


def epoch_table_columns(measured: tuple[str, ...]) -> tuple[str, ...]:
    """The columns of epochs.csv: the epoch, what the task measures each epoch, its seconds."""
    return ("epoch", *measured, "seconds")


class EvaluatorError(ValueError):
    """An evaluator config that cannot work. `key` is the option at fault, if one is."""

    def __init__(self, message: str, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key


@dataclass
class Evaluation:
    metrics: dict[str, Any]
    epochs: list[dict[str, Any]] = field(default_factory=list)


class Evaluator(ABC):
    name: ClassVar[str] = ""
    # This evaluator's options (its config section less `name`), with their defaults.
    options: ClassVar[dict[str, Any]] = {}
    needs_torch: ClassVar[bool] = False
    per_generation: ClassVar[bool] = False
    # The task's metrics it writes (table order), the columns of epochs.csv, the
    # default objective: an evaluator with a data task takes them from the task.
    metrics: tuple[Metric, ...] = ()
    epoch_columns: tuple[str, ...] = ()
    primary: str = ""
    # The metrics it fills with values (what a run may select on).
    produces: tuple[str, ...] = ()
    # The metrics known for a genome without evaluating it (a constraint on them is
    # met at propose time: `Strategy.feasible`).
    cheap_metrics: tuple[str, ...] = ()

    deterministic: ClassVar[bool] = False
    # Whether it trains the networks it evaluates (a final model can be re-trained
    # and exported from its results); `how` says what it does instead.
    trains: ClassVar[bool] = False
    how: ClassVar[str] = ""
    # Whether its primary metric measures the task (an accuracy, trained or looked
    # up): a finished run is then knowledge for a meta-model by default.
    knowledge: ClassVar[bool] = True

    def __init__(self, cfg: dict[str, Any], task: dict[str, Any] | None = None, repeats: int = 1) -> None:
        self.cfg = dict(cfg)
        self.task_cfg = dict(task or {})
        self.repeats = repeats

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # Each form defaults to the other: a concrete evaluator overrides at least one.
        if cls.name and cls.evaluate is Evaluator.evaluate and cls.evaluate_generation is Evaluator.evaluate_generation:
            raise TypeError(f"evaluator {cls.__name__} must define evaluate or evaluate_generation")

    @classmethod
    def option_names(cls) -> tuple[str, ...]:
        return tuple(cls.options)

    @property
    def columns(self) -> tuple[str, ...]:
        return ("status", *(m.name for m in self.metrics), *COST_COLUMNS)

    @property
    def varying_metrics(self) -> tuple[str, ...]:
        """The metrics that differ from one training of a spec to the next (their
        mean and std over repeats are written)."""
        return tuple(m.name for m in self.metrics)

    @property
    def table_columns(self) -> tuple[str, ...]:
        if self.repeats <= 1:
            return self.columns
        return (*self.columns, *(std_column(m) for m in self.varying_metrics), REPEATS_COLUMN)

    def check(self) -> None:
        unknown = unknown_option("evaluator", self.name, self.cfg, self.option_names())
        if unknown:
            raise EvaluatorError(unknown[1], unknown[0])

    def resolved(self) -> dict[str, Any]:
        return {"name": self.name, **self.options, **self.cfg}

    def resolved_task(self) -> dict[str, Any]:
        return dict(self.task_cfg)

    @abstractmethod
    def task_id(self) -> str:
        """Which task this is (runs that share it pool their results in a meta-model)."""

    def data_task(self) -> Task | None:
        return None

    def inputs(self) -> list[str]:
        return []

    def cheap_values(self, space: "SearchSpace", genome: "Genome") -> dict[str, float]:
        """The cheap metrics of a genome, without evaluating it: with a data task, the
        task's torch-free cost (params, flops) of the network it would train."""
        if self.data_task() is None:
            return {}
        if not hasattr(self, "_described"):
            self._described = self.data_task().describe()  # asked once per genome while proposing
        return dict(self.data_task().cost(space, genome, self._described))

    def cheap_constraints(self, constraints: Sequence[Constraint]) -> list[Constraint]:
        """Those of the constraints that bound a cheap metric."""
        return [c for c in constraints if c["metric"] in self.cheap_metrics]

    def cheap_feasible(self, space: "SearchSpace", constraints: Sequence[Constraint]
                       ) -> Callable[["Genome"], bool] | None:
        """Whether a genome meets the constraints on cheap metrics, known without
        evaluating it; None when no constraint is on a cheap metric."""
        cheap = self.cheap_constraints(constraints)
        if not cheap:
            return None
        return lambda genome: violation(self.cheap_values(space, genome), cheap) == 0

    def evaluate(self, spec: dict[str, Any], out_dir: str | Path | None = None, checkpoint: bool = False) -> Evaluation:
        return self.evaluate_generation([spec], [out_dir])[0]

    def evaluate_generation(self, specs: Sequence[dict[str, Any]],
                            out_dirs: Sequence[str | Path | None]) -> list[Evaluation]:
        return [self.evaluate(spec, out) for spec, out in zip(specs, out_dirs, strict=True)]
