"""Digits on a canvas: the segmentation task that needs no download.

Each canvas is a black square of `image_size` pixels with 1 to 4 of
scikit-learn's bundled 8x8 digits on it, each resampled to a side drawn from
`digit_size` (bilinear, nas.tasks.digits.resample_matrix) and put where it
overlaps no digit already there (a digit that finds no free place in
PLACEMENT_TRIES draws is left out). The mask gives each pixel whose ink is at
least INK its digit's class (digit d is class d + 1) and 0 (background)
elsewhere: 11 classes. Each digit's box (the ink's bounding box, x0, y0, x1,
y1 inclusive, and its class) is kept too, for detection.

Canvases are deterministic: canvas i of a split is drawn with the generator
seeded by (data_seed, split, i), so the same options always give the same
images whatever the run seed. The test canvases use only the digits images of
the digits task's fixed test third (nas/tasks/digits.py), the training
canvases only the others: no digit image is in both. Validation canvases are
held out of the training canvases with the run seed, as in the other tasks;
the images are normalised with the training canvases' mean and std.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import numpy as np

from nas.options import integer
from nas.tasks.base import Splits, TaskError, TaskInfo
from nas.tasks.digits import CLASSES, SIZE, TEST_SEED, TEST_SHARE, bundled, resample_matrix
from nas.tasks.segmentation import SegmentationTask
from nas.tasks.splits import cap, hold_out

INK = 0.3
PLACEMENT_TRIES = 20
DEFAULT_IMAGES = 1000
DEFAULT_TEST_IMAGES = 300
DEFAULT_VAL_SIZE = 200
SPLIT_IDS = {"train": 0, "test": 1}
BACKGROUND = "background"


@dataclass
class Canvases:
    images: np.ndarray  # (N, H, W) float32 in [0, 1]
    masks: np.ndarray  # (N, H, W) uint8 class ids, 0 the background
    boxes: list[np.ndarray]  # per canvas (k, 5) int: x0, y0, x1, y1 (inclusive), class


@functools.lru_cache(maxsize=64)
def _resampler(side: int) -> np.ndarray:
    return resample_matrix(SIZE, side)


def draw_canvases(digits: np.ndarray, labels: np.ndarray, count: int, size: int, per_canvas: tuple[int, int],
                  digit_size: tuple[int, int], seed: int, split: int) -> Canvases:
    """`count` canvases of `size` pixels from these 8x8 digits (in [0, 1]) and labels."""
    images = np.zeros((count, size, size), dtype=np.float32)
    masks = np.zeros((count, size, size), dtype=np.uint8)
    boxes = []
    smallest, largest = digit_size[0], min(digit_size[1], size)
    for i in range(count):
        rng = np.random.default_rng([seed, split, i])
        taken = np.zeros((size, size), dtype=bool)
        found = []
        for _ in range(int(rng.integers(per_canvas[0], per_canvas[1] + 1))):
            pick = int(rng.integers(len(labels)))
            side = int(rng.integers(smallest, largest + 1))
            for _ in range(PLACEMENT_TRIES):
                y, x = (int(v) for v in rng.integers(0, size - side + 1, size=2))
                if not taken[y:y + side, x:x + side].any():
                    break
            else:
                continue
            m = _resampler(side)
            ink = (m @ digits[pick] @ m.T).astype(np.float32)  # the image's own precision: mask and image agree
            taken[y:y + side, x:x + side] = True
            images[i, y:y + side, x:x + side] = np.maximum(images[i, y:y + side, x:x + side], ink)
            inked = ink >= INK
            masks[i, y:y + side, x:x + side][inked] = labels[pick] + 1
            rows, cols = np.flatnonzero(inked.any(1)), np.flatnonzero(inked.any(0))
            if len(rows):
                found.append((x + cols[0], y + rows[0], x + cols[-1], y + rows[-1], labels[pick] + 1))
        boxes.append(np.array(found, dtype=np.int64).reshape(-1, 5))
    return Canvases(images, masks, boxes)


def _pair(key: str, value: Any, low: int) -> tuple[int, int]:
    if (not isinstance(value, (list, tuple)) or len(value) != 2
            or any(isinstance(v, bool) or not isinstance(v, int) for v in value) or not low <= value[0] <= value[1]):
        raise TaskError(f"task.{key} must be [least, most] with {low} <= least <= most, got {value!r}")
    return int(value[0]), int(value[1])


class DigitsCanvasTask(SegmentationTask):
    """Options (besides the decoder's): image_size (the canvas side), images and
    test_images (canvases of the training and test splits), digits ([least, most]
    per canvas), digit_size ([least, most] pixels a side), data_seed."""

    options = {**SegmentationTask.options, "image_size": 48, "images": DEFAULT_IMAGES,
               "test_images": DEFAULT_TEST_IMAGES, "digits": [1, 4], "digit_size": [8, 32], "data_seed": 0}
    sizes = ("train_size", "val_size", "image_size", "images", "test_images")
    libraries = ("sklearn.datasets",)

    def check_options(self) -> None:
        super().check_options()
        size = int(self.option("image_size"))
        integer("task", "data_seed", self.option("data_seed"), 0, TaskError)
        _pair("digits", self.option("digits"), 1)
        least, _ = _pair("digit_size", self.option("digit_size"), 1)
        if least > size:
            raise TaskError(f"task.digit_size: the smallest digit ({least} px) does not fit a canvas of {size} px "
                            "(task.image_size)")

    def describe(self) -> TaskInfo:
        size = int(self.option("image_size"))
        return TaskInfo(self.name, (1, size, size), CLASSES + 1)

    def default_val_size(self) -> int:
        return DEFAULT_VAL_SIZE

    def canvases(self, split: str) -> Canvases:
        """The training ("train") or test canvases, as numpy arrays (no torch)."""
        return self._drawn((split,))[0]

    def _drawn(self, splits: tuple[str, ...]) -> list[Canvases]:
        """The canvases of these splits, the digits loaded once for all of them."""
        self.check()
        digits, labels = bundled()
        rest, test = hold_out(len(labels), int(len(labels) * TEST_SHARE), TEST_SEED)
        out = []
        for split in splits:
            chosen = test if split == "test" else rest
            count = int(self.option("test_images" if split == "test" else "images"))
            out.append(draw_canvases(digits[chosen], labels[chosen], count, int(self.option("image_size")),
                                     _pair("digits", self.option("digits"), 1),
                                     _pair("digit_size", self.option("digit_size"), 1),
                                     int(self.option("data_seed")), SPLIT_IDS[split]))
        return out

    def splits(self, seed: int) -> Splits:
        import torch
        from torch.utils.data import TensorDataset

        train_all, test = self._drawn(("train", "test"))
        val_size = int(self.cfg.get("val_size") or DEFAULT_VAL_SIZE)
        try:
            train_idx, val_idx = hold_out(len(train_all.images), val_size, seed)
        except ValueError as e:
            raise TaskError(f"task.val_size: {e} ({len(train_all.images)} training canvases, task.images)") from None
        train_idx = cap(train_idx, self.cfg.get("train_size"), seed)
        mean, std = float(train_all.images[train_idx].mean()), float(train_all.images[train_idx].std())

        def dataset(canvases: Canvases, idx: np.ndarray) -> TensorDataset:
            x = torch.from_numpy((canvases.images[idx] - mean) / std).unsqueeze(1)
            return TensorDataset(x, torch.from_numpy(canvases.masks[idx].astype(np.int64)))

        preprocess = {"pixels": 255, "resize": False, "mean": [mean], "std": [std]}
        names = (BACKGROUND, *(str(d) for d in range(CLASSES)))
        return Splits(self.describe(), dataset(train_all, train_idx), dataset(train_all, val_idx),
                      dataset(test, np.arange(len(test.images))), preprocess, names)
