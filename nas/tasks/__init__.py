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
# Options that make a variant of the digits task (nas/tasks/digits.py); other tasks refuse them.
DIGITS_OPTIONS = ("classes", "rotation", "noise")
ROTATIONS = (0, 90, 180, 270)
DIGIT_LABELS = range(10)


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
    _check_digits_options(cfg)
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


def _check_digits_options(cfg: dict[str, Any]) -> None:
    """classes, rotation, noise: the digits variants' options (see nas/tasks/digits.py)."""
    given = [k for k in DIGITS_OPTIONS if cfg.get(k) is not None]
    if cfg.get("name") != "digits":
        if given:
            raise TaskError(f"task.{given[0]} is an option of the digits task only, not of {cfg.get('name')!r}")
        return
    classes = cfg.get("classes")
    if classes is not None:
        if (not isinstance(classes, (list, tuple)) or len(classes) < 2
                or any(isinstance(c, bool) or not isinstance(c, int) or c not in DIGIT_LABELS for c in classes)
                or len(set(classes)) != len(classes)):
            raise TaskError(f"task.classes must be a list of at least 2 distinct digit labels 0-9, got {classes!r}")
    rotation = cfg.get("rotation")
    if rotation is not None and (isinstance(rotation, bool) or rotation not in ROTATIONS):
        raise TaskError(f"task.rotation must be one of {', '.join(map(str, ROTATIONS))} (degrees), got {rotation!r}")
    noise = cfg.get("noise")
    if noise is not None and (isinstance(noise, bool) or not isinstance(noise, (int, float))
                              or not 0 <= noise < float("inf")):
        raise TaskError(f"task.noise must be a number >= 0 (std of pixel noise, pixels in [0, 1]), got {noise!r}")


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
    if name == "digits":
        size = int(cfg.get("image_size") or shape[1])
        return TaskInfo(name, (1, size, size), len(cfg.get("classes") or range(classes)))
    return TaskInfo(name, shape, classes)


def load(cfg: dict[str, Any], seed: int) -> Splits:
    """Train/validation/test datasets; the same (cfg, seed) always gives the same split."""
    check(cfg)
    if cfg["name"] == "digits":
        from nas.tasks.digits import load_digits_splits

        return load_digits_splits(cfg, seed)
    from nas.tasks.vision import load_vision_splits

    return load_vision_splits(cfg, seed)
