"""torchvision data sets (MNIST, Fashion-MNIST, CIFAR-10/100, SVHN) and ImageFolder."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from nas.tasks.base import Splits, TaskError, TaskInfo, root_of
from nas.tasks.classification import ClassificationTask
from nas.tasks.memory import MemorySet, decoded, source_stamp, wanted
from nas.tasks.splits import cap, hold_out

# (channels, height, width), classes, and training images of each official set.
SHAPES = {
    "mnist": ((1, 28, 28), 10, 60_000),
    "fashion_mnist": ((1, 28, 28), 10, 60_000),
    "cifar10": ((3, 32, 32), 10, 50_000),
    "cifar100": ((3, 32, 32), 100, 50_000),
    "svhn": ((3, 32, 32), 10, 73_257),
}
TEST_IMAGES = {"mnist": 10_000, "fashion_mnist": 10_000, "cifar10": 10_000, "cifar100": 10_000, "svhn": 26_032}
# Each entry lists alternative file sets; the first is what a download writes.
# MNIST-like sets may instead hold the processed tensors of older torchvision.
EXPECTED = {
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
# What torchvision's ImageFolder takes for an image (torchvision.datasets.folder.IMG_EXTENSIONS).
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")

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


def _default_val(train_images: int) -> int:
    """A fifth of the training images, at most DEFAULT_VAL_SIZE."""
    return min(DEFAULT_VAL_SIZE, train_images // 5)


class TorchvisionTask(ClassificationTask):
    """An official torchvision data set under task.root (download off by default)."""

    options = {"root": None, "download": False}
    libraries = ("torchvision",)

    def check(self) -> None:
        super().check()
        root = root_of(self.cfg)
        if not self.cfg.get("download", False):
            alternatives = EXPECTED[self.name]
            if not any(all((root / rel).exists() for rel in files) for files in alternatives):
                missing = next(root / rel for rel in alternatives[0] if not (root / rel).exists())
                raise TaskError(f"task.root: {missing} not found; put the {self.name} files there "
                                "or set task.download: true (needs internet)")

    def describe(self) -> TaskInfo:
        shape, classes, _ = SHAPES[self.name]
        return TaskInfo(self.name, shape, classes)

    def default_val_size(self) -> int:
        return _default_val(SHAPES[self.name][2])

    def decoded_bytes(self) -> int:
        """The official set's pixels, 8 bits each (what task.in_memory: auto weighs)."""
        shape, _, train = SHAPES[self.name]
        return (train + TEST_IMAGES[self.name]) * int(np.prod(shape))

    def splits(self, seed: int) -> Splits:
        self.check()
        root, download = str(root_of(self.cfg)), bool(self.cfg.get("download", False))
        preprocess = _preprocess(self.name, False)
        if wanted(self.option("in_memory"), self.decoded_bytes()):
            train, test = _in_memory(self.cfg, self.describe(), _sources(self.name, root_of(self.cfg)), preprocess,
                                     lambda: _official(self.name, root, download, None))
        else:
            train, test = _opened(self.cfg, lambda: _official(self.name, root, download, _transform(self.name)))
        return _with_validation(self.cfg, self.describe(), seed, train, test, preprocess)


class ImageFolderTask(ClassificationTask):
    """root/train/<class>/<images> (and optionally root/test/<class>/<images>)."""

    options = {"root": None, "image_size": DEFAULT_IMAGE_SIZE, "test_size": IMAGE_FOLDER_TEST_SHARE}
    sizes = ("train_size", "val_size", "image_size", "test_size")
    libraries = ("torchvision",)

    def describe(self) -> TaskInfo:
        size = int(self.cfg.get("image_size") or DEFAULT_IMAGE_SIZE)
        return TaskInfo(self.name, (3, size, size), len(class_folders(root_of(self.cfg) / "train")))

    def default_val_size(self) -> int:
        """As the loader computes it, from the images on disk (counted without torch)."""
        root = root_of(self.cfg)
        images = count_images(root / "train")
        if not (root / "test").is_dir():
            images -= _held_out(images, self.cfg)
        return _default_val(images)

    def decoded_bytes(self) -> int:
        """The folder's images decoded at image_size, 8 bits a pixel (counted without decoding)."""
        root = root_of(self.cfg)
        images = count_images(root / "train") + (count_images(root / "test") if (root / "test").is_dir() else 0)
        return images * int(np.prod(self.describe().input_shape))

    def splits(self, seed: int) -> Splits:
        self.check()
        info = self.describe()
        preprocess = _preprocess(self.name, True)
        if wanted(self.option("in_memory"), self.decoded_bytes()):
            size = info.input_shape[1]
            train, test = _in_memory(self.cfg, info, _folder_sources(root_of(self.cfg)), preprocess,
                                     lambda: _image_folder(self.cfg, _resize(size)), image_size=size)
        else:
            transform = _transform(self.name, info.input_shape[1])
            train, test = _opened(self.cfg, lambda: _image_folder(self.cfg, transform))
        return _with_validation(self.cfg, info, seed, train, test, preprocess)


def _preprocess(name: str, resize: bool) -> dict[str, Any]:
    """What _transform does to an image, as numbers (ToTensor divides 8-bit pixels by 255)."""
    mean, std = _NORMALISE[name]
    return {"pixels": 255, "resize": resize, "mean": list(mean), "std": list(std)}


def _class_names(dataset: Any, count: int) -> tuple[str, ...]:
    """The data set's class names (torchvision's `classes`), or the indices where it has none (SVHN)."""
    while not hasattr(dataset, "classes") and hasattr(dataset, "dataset"):  # a Subset
        dataset = dataset.dataset
    names = getattr(dataset, "classes", None)
    return tuple(map(str, names)) if names and len(names) == count else tuple(str(i) for i in range(count))


def class_folders(folder: Path) -> list[str]:
    if not folder.is_dir():
        raise TaskError(f"task.root: {folder} not found; image_folder needs root/train/<class>/<images>")
    classes = sorted(d.name for d in os.scandir(folder) if d.is_dir())
    if not classes:
        raise TaskError(f"task.root: {folder} has no class folders; image_folder needs root/train/<class>/<images>")
    return classes


def count_images(folder: Path) -> int:
    """Images ImageFolder would find under the class folders of `folder`."""
    total = 0
    for name in class_folders(folder):
        for _, _, files in os.walk(folder / name, followlinks=True):
            total += sum(f.lower().endswith(IMAGE_EXTENSIONS) for f in files)
    return total


def _held_out(images: int, cfg: dict[str, Any]) -> int:
    """Images an image_folder without test/ holds out as its test split."""
    share = float(cfg.get("test_size") or IMAGE_FOLDER_TEST_SHARE)
    return int(share if share >= 1 else max(1, int(images * share)))


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
    kept, held = hold_out(len(train), _held_out(len(train), cfg), 0)
    return Subset(train, kept.tolist()), Subset(train, held.tolist())


def _transform(name: str, size: int | None = None):
    from torchvision import transforms

    mean, std = _NORMALISE[name]
    steps = [transforms.ToTensor(), transforms.Normalize(mean, std)]
    if size is not None:
        # ImageFolder's loader already gives RGB images.
        steps = [_resize(size)] + steps
    return transforms.Compose(steps)


def _resize(size: int):
    from torchvision import transforms

    return transforms.Resize((size, size))


def _sources(name: str, root: Path) -> list[Path]:
    """The files an official set is read from: every file of its own folder
    (cifar-10-batches-py/, MNIST/raw/, ...), or the expected files where they lie in root."""
    files = next(alt for alt in EXPECTED[name] if all((root / rel).exists() for rel in alt))
    folders = {(root / rel).parent for rel in files}
    if root in folders:
        return [root / rel for rel in files]
    return sorted(p for folder in folders for p in folder.iterdir() if p.is_file())


def _folder_sources(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)


def _pixels(dataset: Any) -> tuple[np.ndarray, np.ndarray]:
    """(N, C, H, W) 8-bit pixels and the labels of a torchvision set opened without
    a transform, as its items would hand them to ToTensor."""
    indices = None
    if hasattr(dataset, "indices"):  # a Subset (an image_folder's held-out test split)
        dataset, indices = dataset.dataset, list(dataset.indices)
    if hasattr(dataset, "samples"):  # an ImageFolder: decode (and resize) every image once
        picked = dataset.samples if indices is None else [dataset.samples[i] for i in indices]
        images, labels = [], []
        for path, label in picked:
            image = dataset.loader(path)
            if dataset.transform is not None:
                image = dataset.transform(image)
            images.append(np.asarray(image, dtype=np.uint8).transpose(2, 0, 1))
            labels.append(label)
        return np.stack(images), np.asarray(labels, dtype=np.int64)
    data = np.asarray(dataset.data)
    if data.ndim == 3:  # MNIST-like: (N, H, W)
        data = data[:, None]
    elif data.shape[-1] == 3:  # CIFAR: (N, H, W, C)
        data = data.transpose(0, 3, 1, 2)
    labels = np.asarray(dataset.targets if hasattr(dataset, "targets") else dataset.labels)  # SVHN: labels
    if indices is not None:
        data, labels = data[indices], labels[indices]
    return np.ascontiguousarray(data, dtype=np.uint8), labels.astype(np.int64)


def _in_memory(cfg: dict[str, Any], info: TaskInfo, sources: list[Path], preprocess: dict[str, Any], open_sets,
               image_size: int | None = None) -> tuple[MemorySet, MemorySet]:
    """(train, test) as MemorySets, decoded once per data set (nas/tasks/memory.py's cache)."""
    import torch

    def build() -> dict[str, np.ndarray]:
        train, test = _opened(cfg, open_sets)
        train_x, train_y = _pixels(train)
        test_x, test_y = _pixels(test)
        classes = _class_names(train, info.num_classes)
        return {"train_x": train_x, "train_y": train_y, "test_x": test_x, "test_y": test_y,
                "classes": np.asarray(classes, dtype=str)}

    key = {"task": cfg["name"], "image_size": image_size, "test_size": cfg.get("test_size"),
           "sources": source_stamp(sources)}
    arrays = decoded(key, build)

    def held(x: str, y: str) -> MemorySet:
        return MemorySet(torch.from_numpy(arrays[x]), torch.from_numpy(arrays[y]), preprocess["pixels"],
                         preprocess["mean"], preprocess["std"], classes=[str(c) for c in arrays["classes"]])

    return held("train_x", "train_y"), held("test_x", "test_y")


def _opened(cfg: dict[str, Any], open_sets) -> tuple[Any, Any]:
    """(train, test) datasets, a missing or damaged file a TaskError naming the root."""
    try:
        return open_sets()
    # torchvision: RuntimeError "Dataset not found or corrupted" (a failed checksum
    # too); ImageFolder: FileNotFoundError for a class folder without images.
    except (RuntimeError, FileNotFoundError) as e:
        raise TaskError(f"task.root: {root_of(cfg)}: {e}") from None


def _with_validation(cfg: dict[str, Any], info: TaskInfo, seed: int, train_full: Any, test: Any,
                     preprocess: dict[str, Any]) -> Splits:
    """Validation images held out of the training set with the run seed."""
    from torch.utils.data import Subset

    val_size = int(cfg["val_size"] if cfg.get("val_size") is not None else _default_val(len(train_full)))
    try:
        train_idx, val_idx = hold_out(len(train_full), val_size, seed)
    except ValueError as e:
        raise TaskError(f"task.val_size: {e}") from None
    train_idx = cap(train_idx, cfg.get("train_size"), seed)
    def part(idx: Any) -> Any:
        if isinstance(train_full, MemorySet):
            return train_full.subset(idx)
        return Subset(train_full, np.asarray(idx).tolist())

    return Splits(
        info,
        part(train_idx),
        part(val_idx),
        test,
        preprocess,
        _class_names(train_full, info.num_classes),
    )
