"""scikit-learn's bundled 8x8 handwritten digits: the task that needs no download.

Variants of it (a family of related tasks for meta-learning) come from task options,
applied in this order to the images (pixels scaled to [0, 1]) before the splits:

    classes     keep these digit labels only, relabelled 0..k-1 in the order given
    rotation    0, 90, 180 or 270 degrees counter-clockwise (exact: np.rot90)
    image_size  resample to N x N (area average to shrink, bilinear to grow)
    noise       add Gaussian pixel noise of this std, drawn with a fixed seed:
                the same noisy images for every run seed and candidate

Normalisation then uses the training images' statistics, as for the plain task.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from nas.tasks.base import Splits, TaskError, TaskInfo
from nas.tasks.classification import ClassificationTask
from nas.tasks.memory import MemorySet, wanted
from nas.tasks.splits import cap, hold_out

# A fixed third of the images is the test split, whatever the run seed.
TEST_SHARE = 1 / 3
TEST_SEED = 0
DEFAULT_VAL_SIZE = 300
NOISE_SEED = 12345
SIZE = 8
CLASSES = 10
ROTATIONS = (0, 90, 180, 270)
DIGIT_LABELS = range(CLASSES)


class DigitsTask(ClassificationTask):
    """The bundled digits and their variants (classes, rotation, image_size, noise)."""

    options = {"classes": None, "rotation": 0, "noise": 0.0, "image_size": SIZE}
    sizes = ("train_size", "val_size", "image_size")
    libraries = ("sklearn.datasets",)

    def check_options(self) -> None:
        check_variant(self.cfg)

    def describe(self) -> TaskInfo:
        size = int(self.cfg.get("image_size") or SIZE)
        return TaskInfo(self.name, (1, size, size), len(self.cfg.get("classes") or range(CLASSES)))

    def default_val_size(self) -> int:
        return DEFAULT_VAL_SIZE

    def splits(self, seed: int) -> Splits:
        self.check()
        return load_digits_splits(self.cfg, self.describe(), seed, self.option("in_memory"))


def check_variant(cfg: dict[str, Any]) -> None:
    """classes, rotation, noise: the options that make a variant of the task."""
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


def resample_matrix(src: int, dst: int) -> np.ndarray:
    """(dst, src) weights that resample one axis: area average when shrinking,
    bilinear (pixel centres aligned, edges clamped) when growing; rows sum to 1."""
    m = np.zeros((dst, src))
    scale = src / dst
    for i in range(dst):
        if dst <= src:  # each output pixel averages the source interval it covers
            lo, hi = i * scale, (i + 1) * scale
            for j in range(int(np.floor(lo)), int(np.ceil(hi))):
                m[i, j] = min(hi, j + 1) - max(lo, j)
        else:
            x = min(max((i + 0.5) * scale - 0.5, 0.0), src - 1.0)
            j = int(np.floor(x))
            frac = x - j
            m[i, j] += 1 - frac
            if frac > 0:
                m[i, j + 1] += frac
    return m / m.sum(1, keepdims=True)


def variant(images: np.ndarray, labels: np.ndarray, cfg: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """The task options applied to all images (N x 8 x 8, in [0, 1]) and labels."""
    classes = cfg.get("classes")
    if classes:
        keep = np.isin(labels, classes)
        relabel = {c: i for i, c in enumerate(classes)}
        images, labels = images[keep], np.array([relabel[int(y)] for y in labels[keep]], dtype=np.int64)
    rotation = int(cfg.get("rotation") or 0)
    if rotation:
        images = np.rot90(images, k=rotation // 90, axes=(1, 2))
    size = int(cfg.get("image_size") or SIZE)
    if size != images.shape[1]:
        m = resample_matrix(images.shape[1], size)
        images = np.einsum("ij,njk,lk->nil", m, images, m)
    noise = float(cfg.get("noise") or 0.0)
    if noise:
        images = images + np.random.default_rng(NOISE_SEED).normal(0.0, noise, images.shape)
    return np.ascontiguousarray(images, dtype=np.float32), labels


@functools.lru_cache(maxsize=1)
def bundled() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's digits: images (N x 8 x 8, pixels scaled to [0, 1]) and labels,
    read once a process (a shared trainer reads them before it forks: every
    training job then has them). Read-only: variants make new arrays."""
    from sklearn.datasets import load_digits

    data = load_digits()
    images, labels = data.images.astype(np.float32) / 16.0, data.target.astype(np.int64)
    images.setflags(write=False)
    labels.setflags(write=False)
    return images, labels


def load_digits_splits(cfg: dict[str, Any], info: TaskInfo, seed: int, in_memory: Any) -> Splits:
    import torch
    from torch.utils.data import TensorDataset

    images, labels = variant(*bundled(), cfg)
    rest, test = hold_out(len(labels), int(len(labels) * TEST_SHARE), TEST_SEED)
    val_size = int(cfg.get("val_size") or DEFAULT_VAL_SIZE)
    try:
        train_pos, val_pos = hold_out(len(rest), val_size, seed)
    except ValueError as e:
        raise TaskError(f"task.val_size: {e} ({len(rest)} digits images outside the test split)") from None
    train = cap(rest[train_pos], cfg.get("train_size"), seed)
    val = rest[val_pos]
    # Normalise with the training images' statistics only.
    mean, std = images[train].mean(), images[train].std()

    # Normalised once here: held in memory (the default) the splits are these tensors.
    in_memory = wanted(in_memory, images.nbytes)

    def dataset(idx: np.ndarray) -> MemorySet | TensorDataset:
        x = torch.from_numpy((images[idx] - mean) / std).unsqueeze(1)
        y = torch.from_numpy(labels[idx])
        return MemorySet(x, y) if in_memory else TensorDataset(x, y)

    # An 8-bit image of a digit (0..255) scaled to [0, 1] is what the bundled
    # 0..16 pixels scaled by 16 are.
    preprocess = {"pixels": 255, "resize": False, "mean": [float(mean)], "std": [float(std)]}
    names = tuple(str(c) for c in (cfg.get("classes") or DIGIT_LABELS))
    return Splits(info, dataset(train), dataset(val), dataset(test), preprocess, names)
