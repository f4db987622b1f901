"""Data sets held as tensors on the training device, and the loader that draws them.

A small classification set (digits, MNIST, Fashion-MNIST, CIFAR-10/100, SVHN,
an ImageFolder below `IN_MEMORY_BYTES`) fits in memory many times over, and
reading it image by image through a DataLoader (a PIL image, ToTensor and
Normalize per item, then a collate) costs more than training a small network
on it. `MemorySet` holds a split as one tensor (8-bit pixels, or floats
normalised already) and normalises a whole batch at once with the operations
ToTensor and Normalize apply to each image, in their order, so that on the CPU
a batch is bit for bit the generic loader's. `Batches` draws the batches of a
`DataLoader(shuffle=True, generator=g)` with the same draws from `g`, so the
generator's state (kept in checkpoints) and every later epoch agree too.

The decoded pixels of a data set come from `decoded`: a cache file per data
set (keyed by its name, folder, options and the source files' sizes and
times), written atomically, so that the jobs of a search decode the images
once between them instead of once each (`SNAKENAS_CACHE`, default
~/.cache/snakenas, chooses the folder).

task.in_memory: auto (in memory when the decoded set is at most
IN_MEMORY_BYTES), true, or false (the generic loader: large folders).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Sequence

import numpy as np

from nas.io import atomic_write_bytes

if TYPE_CHECKING:
    import torch

IN_MEMORY = ("auto", True, False)
# The largest decoded set `in_memory: auto` holds: per training process, so a
# few parallel jobs still fit a workstation's memory (and a GPU's).
IN_MEMORY_BYTES = 1 << 30
CACHE_ENV = "SNAKENAS_CACHE"
# Bumped when what a cache file holds changes: older files are then not read.
CACHE_FORMAT = 1


def wanted(choice: Any, size_bytes: int) -> bool:
    """Whether a data set of `size_bytes` decoded is held in memory under `task.in_memory`."""
    if choice == "auto":
        return size_bytes <= IN_MEMORY_BYTES
    return bool(choice)


class MemorySet:
    """A split as tensors: `images` (N, C, H, W) and `labels` (N,).

    8-bit `images` with `pixels` set are divided by it and normalised by `mean`
    and `std` per channel when a batch is taken, as torchvision's ToTensor and
    Normalize do to one image; float `images` (pixels None) are the network's
    input already. It is also a Dataset: item i is batch([i])'s one image.
    """

    def __init__(self, images: "torch.Tensor", labels: "torch.Tensor", pixels: int | None = None,
                 mean: Sequence[float] | None = None, std: Sequence[float] | None = None,
                 classes: Sequence[str] | None = None) -> None:
        import torch

        self.images, self.labels, self.pixels = images, labels, pixels
        # The name of each label (torchvision's `classes`), where the data set has them.
        self.classes = list(classes) if classes is not None else None
        self.mean_std = (mean, std)
        channels = images.shape[1]
        # (1, C, 1, 1) in float32, as Normalize's (C, 1, 1) tensors, on the images' device.
        self._mean = torch.as_tensor(mean if mean is not None else [0.0] * channels,
                                     dtype=torch.float32, device=images.device).view(1, -1, 1, 1)
        self._std = torch.as_tensor(std if std is not None else [1.0] * channels,
                                    dtype=torch.float32, device=images.device).view(1, -1, 1, 1)

    @property
    def tensors(self) -> tuple["torch.Tensor", "torch.Tensor"]:
        """(images, labels) as held, under TensorDataset's name for them."""
        return self.images, self.labels

    @property
    def device(self) -> "torch.device":
        return self.images.device

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple["torch.Tensor", "torch.Tensor"]:
        import torch

        x, y = self.batch(torch.tensor([int(i)], device=self.device))
        return x[0], y[0]

    def batch(self, idx: "torch.Tensor") -> tuple["torch.Tensor", "torch.Tensor"]:
        """The network's input and the labels of the images at `idx`."""
        import torch

        x = self.images[idx]
        if self.pixels is not None:
            # ToTensor: to float, divide by 255; Normalize: subtract the mean, divide by the std.
            x = x.to(torch.float32).div(self.pixels).sub_(self._mean).div_(self._std)
        return x, self.labels[idx]

    def subset(self, idx: Sequence[int] | np.ndarray) -> "MemorySet":
        import torch

        pos = torch.as_tensor(np.asarray(idx, dtype=np.int64), device=self.device)
        return MemorySet(self.images[pos], self.labels[pos], self.pixels, *self.mean_std, self.classes)

    def to(self, device: "torch.device | str") -> "MemorySet":
        import torch

        if self.images.device == torch.device(device):
            return self
        return MemorySet(self.images.to(device), self.labels.to(device), self.pixels, *self.mean_std, self.classes)

    def joined(self, other: "MemorySet") -> "MemorySet":
        """This set's images then `other`'s, as ConcatDataset orders them."""
        import torch

        if (self.pixels, self.mean_std) != (other.pixels, other.mean_std):
            raise ValueError("only splits of one data set join")
        return MemorySet(torch.cat([self.images, other.images]), torch.cat([self.labels, other.labels]),
                         self.pixels, *self.mean_std, self.classes)


class Batches:
    """The batches of a MemorySet, drawn as DataLoader(data, batch_size, shuffle,
    generator=g) draws them (no workers, last batch kept): per epoch, the
    iterator's seed for workers, then a permutation, then the sampler's next
    permutation, which it draws before it finds it has nothing more to give."""

    def __init__(self, data: MemorySet, batch_size: int, shuffle: bool = False,
                 generator: "torch.Generator | None" = None) -> None:
        if shuffle and generator is None:
            raise ValueError("a shuffled loader needs its generator (the training's seed)")
        self.data, self.batch_size, self.shuffle, self.generator = data, int(batch_size), shuffle, generator

    def __len__(self) -> int:
        return (len(self.data) + self.batch_size - 1) // self.batch_size

    def __iter__(self) -> Iterator[tuple["torch.Tensor", "torch.Tensor"]]:
        import torch

        n = len(self.data)
        if self.shuffle:
            torch.empty((), dtype=torch.int64).random_(generator=self.generator)
            order = torch.randperm(n, generator=self.generator)
            torch.randperm(n, generator=self.generator)
            order = order.to(self.data.device)
        else:
            order = torch.arange(n, device=self.data.device)
        for start in range(0, n, self.batch_size):
            yield self.data.batch(order[start:start + self.batch_size])


# -- decoded once per data set ----------------------------------------------------


def cache_dir() -> Path:
    """Where decoded data sets are kept: $SNAKENAS_CACHE, else ~/.cache/snakenas."""
    base = os.environ.get(CACHE_ENV) or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "snakenas"
    return Path(base).expanduser() / "data"


def source_stamp(paths: Sequence[Path]) -> str:
    """A digest of each source file's path, size and modification time: a changed,
    added or removed file makes another key."""
    digest = hashlib.sha256()
    for path in paths:
        stat = path.stat()
        digest.update(f"{path.resolve()}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def decoded(key: dict[str, Any], build: Callable[[], dict[str, np.ndarray]],
            log: Callable[[str], None] | None = None) -> dict[str, np.ndarray]:
    """The arrays `build()` makes, from the cache file of `key` when there is one
    (a damaged or unreadable one is made again); `build` runs at most once here."""
    digest = hashlib.sha256(json.dumps({"format": CACHE_FORMAT, **key}, sort_keys=True).encode()).hexdigest()[:32]
    path = cache_dir() / f"{digest}.npz"
    try:
        with np.load(path, allow_pickle=False) as saved:
            return {name: saved[name] for name in saved.files}
    except FileNotFoundError:
        pass
    except Exception as e:  # a truncated file fails in many ways; all mean "decode again"
        if log is not None:
            log(f"data cache {path} unreadable ({type(e).__name__}): decoding again")
    arrays = build()
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    try:
        atomic_write_bytes(path, buffer.getvalue())
    except OSError as e:  # a read-only or full cache costs time, never the training
        if log is not None:
            log(f"data cache {path} not written ({e}); decoding again in the next job")
    return arrays
