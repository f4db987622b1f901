"""torchvision data sets (MNIST, Fashion-MNIST, CIFAR-10/100, SVHN) and ImageFolder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from nas.tasks import DEFAULT_IMAGE_SIZE, Splits, TaskError, describe, root_of
from nas.tasks.splits import cap, hold_out

# Per-channel mean and std of each training set (the usual published values).
_NORMALISE = {
    "mnist": ((0.1307,), (0.3081,)),
    "fashion_mnist": ((0.2860,), (0.3530,)),
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
    "svhn": ((0.4377, 0.4438, 0.4728), (0.1980, 0.2010, 0.1970)),
    "image_folder": ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
}
DEFAULT_VAL_SIZE = 5000
IMAGE_FOLDER_TEST_SHARE = 0.2


def _official(name: str, root: str, download: bool, transform) -> tuple[Any, Any]:
    from torchvision import datasets

    if name == "svhn":
        return (
            datasets.SVHN(root, split="train", download=download, transform=transform),
            datasets.SVHN(root, split="test", download=download, transform=transform),
        )
    cls = {
        "mnist": datasets.MNIST,
        "fashion_mnist": datasets.FashionMNIST,
        "cifar10": datasets.CIFAR10,
        "cifar100": datasets.CIFAR100,
    }[name]
    return cls(root, train=True, download=download, transform=transform), cls(
        root, train=False, download=download, transform=transform
    )


def _image_folder(cfg: dict[str, Any], transform) -> tuple[Any, Any]:
    from torch.utils.data import Subset
    from torchvision import datasets

    root = root_of(cfg)
    train = datasets.ImageFolder(str(root / "train"), transform=transform)
    if (root / "test").is_dir():
        test = datasets.ImageFolder(str(root / "test"), transform=transform)
        if test.classes != train.classes:
            raise TaskError(f"task.root: {root}/test has classes {test.classes}, train has {train.classes}")
        return train, test
    share = float(cfg.get("test_size") or IMAGE_FOLDER_TEST_SHARE)
    count = share if share >= 1 else max(1, int(len(train) * share))
    kept, held = hold_out(len(train), int(count), 0)
    return Subset(train, kept.tolist()), Subset(train, held.tolist())


def load_vision_splits(cfg: dict[str, Any], seed: int) -> Splits:
    from torch.utils.data import Subset
    from torchvision import transforms

    name = cfg["name"]
    mean, std = _NORMALISE[name]
    steps = [transforms.ToTensor(), transforms.Normalize(mean, std)]
    if name == "image_folder":
        size = int(cfg.get("image_size") or DEFAULT_IMAGE_SIZE)
        # ImageFolder's loader already gives RGB images.
        steps = [transforms.Resize((size, size))] + steps
    transform = transforms.Compose(steps)
    try:
        if name == "image_folder":
            train_full, test = _image_folder(cfg, transform)
        else:
            train_full, test = _official(name, str(root_of(cfg)), bool(cfg.get("download", False)), transform)
    # torchvision: RuntimeError "Dataset not found or corrupted" (a failed checksum
    # too); ImageFolder: FileNotFoundError for a class folder without images.
    except (RuntimeError, FileNotFoundError) as e:
        raise TaskError(f"task.root: {root_of(cfg)}: {e}") from None
    val_size = int(cfg.get("val_size") or min(DEFAULT_VAL_SIZE, len(train_full) // 5))
    try:
        train_idx, val_idx = hold_out(len(train_full), val_size, seed)
    except ValueError as e:
        raise TaskError(f"task.val_size: {e}") from None
    train_idx = cap(train_idx, cfg.get("train_size"), seed)
    return Splits(
        describe(cfg),
        Subset(train_full, np.asarray(train_idx).tolist()),
        Subset(train_full, np.asarray(val_idx).tolist()),
        test,
    )
