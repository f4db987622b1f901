"""What every task offers: its data, its splits, and what a good network does on it.

A task is built from its config section (`Task(cfg)`), and is used in two
places of a search:

  config time, no torch (the Snakefile, `python -m nas check`):
      check()      everything that can be wrong before training (TaskError)
      describe()   input shape and class count
      resolved()   the section with every default filled in (run.yaml)
      task_id()    which task this is for meta-learning
  training time (the train evaluator, torch imported by the methods):
      splits(seed)                 train / validation / test datasets
      training_split(dataset)      the training data as the loop draws it (a task's
                                   random flips wrap it)
      augmenter(splits)            task.augment on a batch's inputs (crop_flip), or None
      model(space, genome, info)   the candidate's backbone with the task's head
      cost(space, genome, info)    that network's params and flops, without torch
                                   (config time too: the cheap metrics)
      to_device(batch), step(model, batch, recipe) -> (loss, stats)   per batch
      train_summary(loss_sum, sums)    the epoch's training columns
      evaluate(model, loader)      {measure: value} on one split
      draw(model, splits, device, folder)   pictures of a trained candidate beside
                                   its metrics (segmentation: predictions.png)
  the final model: splits.preprocess and splits.classes say how an image
  becomes an input and what each output means (nas/final.py, nas/predict.py)

`metrics` are the task's columns of the tables and metrics.json, in order
(val_* and test_* from `evaluate` on those splits, train_* from the last
epoch), registered with nas.objectives with their direction; `primary` is
the default objective; `epoch_columns` sit between `epoch` and `seconds` in
epochs.csv. Splits: the test split is fixed by the data set (or by seed 0
where it has none); the validation images are drawn from the training split
with the run seed, so every candidate of a run sees the same split. Test
metrics are reported, never selected on. A split may be a `MemorySet`
(nas/tasks/memory.py: task.in_memory), which the loop draws on the device.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, ClassVar

from nas.objectives import Metric
from nas.options import choice, unknown_option
from nas.tasks.memory import IN_MEMORY

if TYPE_CHECKING:  # torch stays out of the import path of the light steps
    import torch

    from nas.spaces.base import Genome, SearchSpace

# Options every task takes, with their defaults; a task adds its own (`options`).
# in_memory: where the images are held while training (nas/tasks/memory.py);
# augment: what the training loop does to each batch (nas/tasks/augment.py).
COMMON_OPTIONS: dict[str, Any] = {"train_size": None, "val_size": None, "features": None,
                                  "in_memory": "auto", "augment": "none"}
# Options that do not change what the task is (left out of its id): where the
# data lies, how it is read, and the training's augmentation, which is a
# recipe of training as the epochs are, not other data.
NOT_IDENTITY = ("root", "download", "features", "in_memory", "augment")


class TaskError(ValueError):
    """A task config that cannot work, or data that is not where it should be."""


@dataclass(frozen=True)
class TaskInfo:
    name: str
    input_shape: tuple[int, int, int]
    num_classes: int


@dataclass
class Splits:
    info: TaskInfo
    train: Any  # torch.utils.data.Dataset
    val: Any
    test: Any
    # What the images went through, for a model used outside the search (the
    # final model's card, `snakenas predict`): 8-bit pixels divided by `pixels`,
    # resized to the input shape or not, then (x - mean) / std per channel.
    preprocess: dict[str, Any] | None = None
    # The name of each output index.
    classes: tuple[str, ...] | None = None


class Task(ABC):
    # This task's own options (besides COMMON_OPTIONS), with their defaults.
    options: ClassVar[dict[str, Any]] = {}
    # Options that are sizes: counts (test_size may also be a share).
    sizes: ClassVar[tuple[str, ...]] = ("train_size", "val_size")
    metrics: ClassVar[tuple[Metric, ...]] = ()
    primary: ClassVar[str] = ""
    epoch_columns: ClassVar[tuple[str, ...]] = ()
    # The DataLoader's collate function (None: PyTorch's default).
    collate: ClassVar[Callable[[list], Any] | None] = None
    # task.augment values this kind of task can do (nas/tasks/augment.py).
    augments: ClassVar[tuple[str, ...]] = ("none",)
    # Whether its splits can be held as tensors on the device (task.in_memory: true).
    in_memory_sets: ClassVar[bool] = False
    # The heavy modules its data path imports besides torch: a shared trainer
    # imports them once before it forks its jobs (nas/shared_trainer.py).
    libraries: ClassVar[tuple[str, ...]] = ()

    def __init__(self, cfg: dict[str, Any]) -> None:
        self.cfg = dict(cfg)
        self.name = str(cfg.get("name"))

    @classmethod
    def option_names(cls) -> tuple[str, ...]:
        return (*COMMON_OPTIONS, *cls.options)

    def option(self, key: str) -> Any:
        """One of this task's options: the config's value, else its default."""
        value = self.cfg.get(key)
        return ({**COMMON_OPTIONS, **self.options}[key]) if value is None else value

    # -- config time ------------------------------------------------------------------

    def check(self) -> None:
        """Everything that can be known before training, without torch."""
        unknown = unknown_option("task", self.name, self.cfg, self.option_names())
        if unknown:
            raise TaskError(unknown[1])
        for key in self.sizes:
            check_size(self.cfg, key)
        choice(f"task {self.name!r}", "in_memory", self.option("in_memory"), IN_MEMORY, TaskError)
        if self.option("in_memory") is True and not self.in_memory_sets:
            raise TaskError(f"task {self.name!r} option in_memory=true: its data is read through the generic "
                            "loader only (in-memory sets: digits, mnist, fashion_mnist, cifar10, cifar100, "
                            "svhn, image_folder); use auto or false")
        choice(f"task {self.name!r}", "augment", self.option("augment"), self.augments, TaskError)
        self.check_options()
        self.describe()

    def check_options(self) -> None:
        """This task's own options (before `describe`, which relies on them)."""

    @abstractmethod
    def describe(self) -> TaskInfo:
        """Input shape and class count, without torch."""

    def default_val_size(self) -> int:
        """Images held out for validation when task.val_size is not given."""
        raise NotImplementedError

    def resolved(self) -> dict[str, Any]:
        """The config section with every option's default filled in (for run.yaml), so
        that a default changed in code cannot change what a written run means."""
        out = {"name": self.name, **COMMON_OPTIONS, **self.options, **self.cfg}
        if out["val_size"] is None:
            out["val_size"] = self.default_val_size()
        return out

    def task_id(self) -> str:
        """Which task this is: runs that share it pool their results in a meta-model.

        The name and the options *as the config gave them* that change the data
        (train_size, image_size, ...): an option left to its default is not part
        of it, so filling defaults into run.yaml does not change a task's id
        (nas.config takes the id before it fills them)."""
        options = [f"{k}={_option(v)}" for k, v in sorted(self.cfg.items())
                   if k not in ("name", *NOT_IDENTITY) and v is not None]
        return " ".join([self.name, *options])

    # -- training time (torch) ------------------------------------------------------------

    @abstractmethod
    def splits(self, seed: int) -> Splits:
        """Train/validation/test datasets; the same (cfg, seed) always gives the same split."""

    @abstractmethod
    def model(self, space: "SearchSpace", genome: "Genome", info: TaskInfo) -> "torch.nn.Module":
        """The network trained for a candidate: the space's backbone with this task's head."""

    def cost(self, space: "SearchSpace", genome: "Genome", info: TaskInfo) -> dict[str, int]:
        """{"params", "flops"} of `model`'s network, without torch: the space's
        classification network unless the task's head differs."""
        return space.cost(genome, info.input_shape, info.num_classes)

    def training_split(self, dataset: Any) -> Any:
        return dataset

    def augmenter(self, splits: Splits) -> "Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None":
        """What task.augment does to a training batch's inputs on the device, given
        the loop's generator for its draws; None: nothing (no draws)."""
        return None

    def draw(self, model: "torch.nn.Module", splits: Splits, device: "torch.device", folder: str | Path) -> None:
        """Files a trained candidate leaves in its eval folder besides its metrics (none here)."""

    def to_device(self, batch: Any, device: "torch.device") -> Any:
        return tuple(t.to(device) for t in batch)

    @abstractmethod
    def step(self, model: "torch.nn.Module", batch: Any, recipe: dict[str, Any]) -> tuple["torch.Tensor", dict[str, int]]:
        """The training loss of one batch and the counts it adds to the epoch's
        sums (`count`: its size, whose loss-weighted sum gives the mean loss)."""

    @abstractmethod
    def train_summary(self, loss_sum: float, sums: dict[str, int]) -> dict[str, float]:
        """The epoch's train_* columns from the summed loss (x batch size) and counts."""

    @abstractmethod
    def evaluate(self, model: "torch.nn.Module", loader: Any, device: "torch.device") -> dict[str, float]:
        """Measures on one split ({"loss": mean loss, ...}); val_<measure> and
        test_<measure> are the columns they fill."""


def _option(value: Any) -> str:
    """An option's value in a task id: lists as 4,5,6 (no spaces)."""
    if isinstance(value, (list, tuple)):
        return ",".join(map(str, value))
    return str(value)


def check_size(cfg: dict[str, Any], key: str) -> None:
    value = cfg.get(key)
    if value is None:
        return
    is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
    # test_size may be a share of the images (0.2) as well as a count.
    whole = key == "test_size" or (is_number and float(value).is_integer())
    if not (is_number and whole and value > 0):
        kind = "a positive share or count" if key == "test_size" else "a whole number >= 1"
        raise TaskError(f"task.{key} must be {kind}, got {value!r}")


def root_of(cfg: dict[str, Any]) -> Path:
    """The task's data folder, with ~ expanded as torchvision does."""
    if not cfg.get("root"):
        raise TaskError(f"task {cfg['name']!r} needs task.root, the folder that holds (or will hold) the data")
    return Path(cfg["root"]).expanduser()
