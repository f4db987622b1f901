"""Data sets a search trains on: what they look like, and their splits.

`describe` and `check` answer without torch (the Snakefile and config checks
use them); `load` builds torch datasets. Splits: the test split is fixed by the
data set (or by seed 0 where it has none); the validation images are drawn
from the training split with the run seed, so every candidate of a run sees
the same split. Test accuracy is reported, never used for selection.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

TASKS = ("digits", "mnist", "fashion_mnist", "cifar10", "cifar100", "svhn", "image_folder")
TORCHVISION_TASKS = ("mnist", "fashion_mnist", "cifar10", "cifar100", "svhn")

# (channels, height, width), classes, and the files torchvision reads under root.
_SHAPES = {
    "digits": ((1, 8, 8), 10),
    "mnist": ((1, 28, 28), 10),
    "fashion_mnist": ((1, 28, 28), 10),
    "cifar10": ((3, 32, 32), 10),
    "cifar100": ((3, 32, 32), 100),
    "svhn": ((3, 32, 32), 10),
}
# Each entry lists alternative file sets; the first is what a download writes.
# MNIST-like sets may instead hold the processed tensors of older torchvision.
_EXPECTED = {
    "mnist": [
        ["MNIST/raw/train-images-idx3-ubyte", "MNIST/raw/t10k-images-idx3-ubyte"],
        ["MNIST/processed/training.pt", "MNIST/processed/test.pt"],
    ],
    "fashion_mnist": [
        ["FashionMNIST/raw/train-images-idx3-ubyte", "FashionMNIST/raw/t10k-images-idx3-ubyte"],
        ["FashionMNIST/processed/training.pt", "FashionMNIST/processed/test.pt"],
    ],
    "cifar10": [["cifar-10-batches-py/data_batch_1", "cifar-10-batches-py/test_batch"]],
    "cifar100": [["cifar-100-python/train", "cifar-100-python/test"]],
    "svhn": [["train_32x32.mat", "test_32x32.mat"]],
}
DEFAULT_IMAGE_SIZE = 32


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
    train: Any  # torch.utils.data.Dataset of (CxHxW float tensor, int label)
    val: Any
    test: Any


def check(cfg: dict[str, Any]) -> None:
    """Everything that can be known before training, without torch."""
    name = cfg.get("name")
    if name not in TASKS:
        raise TaskError(f"unknown task {name!r}; choose one of: {', '.join(TASKS)}")
    for key in ("train_size", "val_size", "image_size", "test_size"):
        _check_size(cfg, key)
    if name in TORCHVISION_TASKS or name == "image_folder":
        root = root_of(cfg)
        if name == "image_folder" or not cfg.get("download", False):
            _check_files(name, root)
    describe(cfg)


def _check_size(cfg: dict[str, Any], key: str) -> None:
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


def _check_files(name: str, root: Path) -> None:
    if name == "image_folder":
        _class_folders(root / "train")
        return
    alternatives = _EXPECTED[name]
    if any(all((root / rel).exists() for rel in files) for files in alternatives):
        return
    missing = next(root / rel for rel in alternatives[0] if not (root / rel).exists())
    raise TaskError(
        f"task.root: {missing} not found; put the {name} files there or set task.download: true (needs internet)"
    )


def _class_folders(folder: Path) -> list[str]:
    if not folder.is_dir():
        raise TaskError(f"task.root: {folder} not found; image_folder needs root/train/<class>/<images>")
    classes = sorted(d.name for d in os.scandir(folder) if d.is_dir())
    if not classes:
        raise TaskError(f"task.root: {folder} has no class folders; image_folder needs root/train/<class>/<images>")
    return classes


def describe(cfg: dict[str, Any]) -> TaskInfo:
    """Input shape and class count of a task, without torch."""
    name = cfg.get("name")
    if name == "image_folder":
        size = int(cfg.get("image_size") or DEFAULT_IMAGE_SIZE)
        return TaskInfo(name, (3, size, size), len(_class_folders(root_of(cfg) / "train")))
    if name not in _SHAPES:
        raise TaskError(f"unknown task {name!r}; choose one of: {', '.join(TASKS)}")
    shape, classes = _SHAPES[name]
    return TaskInfo(name, shape, classes)


def load(cfg: dict[str, Any], seed: int) -> Splits:
    """Train/validation/test datasets; the same (cfg, seed) always gives the same split."""
    check(cfg)
    if cfg["name"] == "digits":
        from nas.tasks.digits import load_digits_splits

        return load_digits_splits(cfg, seed)
    from nas.tasks.vision import load_vision_splits

    return load_vision_splits(cfg, seed)
