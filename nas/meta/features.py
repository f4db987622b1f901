"""Task features: what a task looks like, as a few numbers.

A data task's features are computed from its training split: size, classes,
input shape, simple pixel and label statistics (labels of images, or of the
pixels of a segmentation task's masks), and an embedding of the images
by a small random convolutional network with fixed weights (the same network
for every task, so embeddings are comparable). The statistics and the
embedding see a fixed random sample of MAX_IMAGES training images (all of them
when there are no more), not the first ones: an image folder's split is
ordered by class. A task whose evaluator has no data here (a table) has the
features the config declares under `task.features` (for instance classes,
n_train, height). Declared features always win over computed ones.

Each run's features are saved as results/{run}/task.json:
    {"task": "<task id>", "features": {name: value, ...}, "source": "data" | "config",
     "version": FEATURES_VERSION}
Runs with the same task id (run.yaml's `task_id`, nas.tasks.base.Task.task_id)
are one task in the knowledge base.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from nas import layout
from nas.config import load_run
from nas.evaluators import evaluator_for
from nas.io import CorruptArtefact, read_json, write_json

if TYPE_CHECKING:  # torch only in the task-features step
    import torch

# Computed features, in this order. Sizes enter as logarithms: 1,000 and
# 2,000 images differ as much as 10,000 and 20,000.
SHAPE_FEATURES = ("log_train", "log_classes", "channels", "log_pixels")
# Pixel statistics that do not change when the pixels are shifted and scaled:
# loaders normalise images, so a mean or a std would be the same (0, 1) for
# every task. Neighbour correlation falls with pixel noise and rises with
# resolution; skewness and kurtosis tell sparse strokes from textured images.
STAT_FEATURES = ("neighbour_corr", "pixel_skew", "pixel_kurtosis", "label_entropy")
EMBED_DIM = 8
EMBED_FEATURES = tuple(f"embed_{i}" for i in range(EMBED_DIM))
FEATURES = SHAPE_FEATURES + STAT_FEATURES + EMBED_FEATURES
# Training images the statistics and the embedding see: a random sample of this
# many, drawn with SAMPLE_SEED, or the whole split when it is no larger.
MAX_IMAGES = 512
SAMPLE_SEED = 0
EMBED_SEED = 0
EMBED_SIZE = 16
# 2: images sampled at random, not the first MAX_IMAGES of the split.
FEATURES_VERSION = 2


def declared(run: dict[str, Any]) -> dict[str, float]:
    features = (run.get("task") or {}).get("features") or {}
    return {str(k): float(v) for k, v in features.items()}


def shape_features(n_train: int, classes: int, shape: tuple[int, int, int]) -> dict[str, float]:
    return {
        "log_train": math.log(max(n_train, 1)),
        "log_classes": math.log(max(classes, 1)),
        "channels": float(shape[0]),
        "log_pixels": math.log(max(shape[1] * shape[2], 1)),
    }


def sample(n: int) -> list[int]:
    """Indices of the training images the features see: all when n <= MAX_IMAGES,
    else MAX_IMAGES drawn at random with a fixed seed, in order."""
    if n <= MAX_IMAGES:
        return list(range(n))
    return sorted(int(i) for i in np.random.default_rng(SAMPLE_SEED).choice(n, MAX_IMAGES, replace=False))


def computed(run: dict[str, Any]) -> dict[str, float]:
    """Features of a data task from its training split (imports torch, loads the data)."""
    import torch

    splits = evaluator_for(run).data_task().splits(run.get("seed", 0))
    train = splits.train
    picked = sample(len(train))
    images = torch.stack([train[i][0] for i in picked]).float()
    # A class label per image, or per pixel (a segmentation mask): the label
    # entropy is that of every labelled target; ignored pixels (255) are no class.
    labels = torch.cat([torch.as_tensor(train[i][1]).reshape(-1) for i in picked])
    labels = labels[(labels >= 0) & (labels < splits.info.num_classes)]
    counts = torch.bincount(labels, minlength=splits.info.num_classes).float()
    p = counts[counts > 0] / counts.sum()
    entropy = float(-(p * p.log()).sum()) / math.log(max(splits.info.num_classes, 2))
    features = shape_features(len(train), splits.info.num_classes, splits.info.input_shape)
    features.update(pixel_statistics(images.mean(1)), label_entropy=entropy)
    features.update(zip(EMBED_FEATURES, embed(images).tolist()))
    return {k: round(v, 6) for k, v in features.items()}


def pixel_statistics(gray: "torch.Tensor") -> dict[str, float]:
    """Shift- and scale-invariant statistics of (N, H, W) grey images."""

    def corr(a: torch.Tensor, b: torch.Tensor) -> float:
        a, b = a.flatten() - a.mean(), b.flatten() - b.mean()
        denominator = float(a.norm() * b.norm())
        return float(a @ b) / denominator if denominator > 0 else 0.0

    pairs = []
    if gray.shape[2] > 1:
        pairs.append(corr(gray[:, :, 1:], gray[:, :, :-1]))
    if gray.shape[1] > 1:
        pairs.append(corr(gray[:, 1:, :], gray[:, :-1, :]))
    z = gray.flatten()
    z = (z - z.mean()) / (z.std() + 1e-8)
    return {
        "neighbour_corr": sum(pairs) / len(pairs) if pairs else 0.0,
        "pixel_skew": float((z ** 3).mean()),
        "pixel_kurtosis": float((z ** 4).mean() - 3.0),
    }


def embed(images: "torch.Tensor") -> "torch.Tensor":
    """Mean response of a fixed random conv net to the images (any channels and size)."""
    import torch
    from torch import nn

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(EMBED_SEED)
        net = nn.Sequential(
            nn.Conv2d(1, EMBED_DIM, 3, padding=1), nn.ReLU(),
            nn.Conv2d(EMBED_DIM, EMBED_DIM, 3, stride=2, padding=1), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        )
    gray = images.mean(1, keepdim=True)  # one channel, whatever the task has
    gray = (gray - gray.mean()) / (gray.std() + 1e-8)
    gray = nn.functional.interpolate(gray, size=(EMBED_SIZE, EMBED_SIZE), mode="bilinear", align_corners=False)
    with torch.no_grad():
        return net(gray).mean(0)


def has_data(run: dict[str, Any]) -> bool:
    """Whether the run's features come from its data (else from config only)."""
    return evaluator_for(run).data_task() is not None


def task_record(run: dict[str, Any]) -> dict[str, Any]:
    """task.json of a run: its task id and features (declared ones win)."""
    own = declared(run)
    if not has_data(run):
        return {"task": run["task_id"], "features": own, "source": "config", "version": FEATURES_VERSION}
    return {"task": run["task_id"], "features": {**computed(run), **own}, "source": "data",
            "version": FEATURES_VERSION}


def write_task(rdir: str | Path) -> dict[str, Any]:
    """The task-features step: results/{run}/task.json from results/{run}/run.yaml."""
    record = task_record(load_run(rdir))
    write_json(layout.task_json(rdir), record)
    return record


def read_task(path: str | Path) -> dict[str, Any]:
    record = read_json(path)
    if not isinstance(record, dict) or not isinstance(record.get("task"), str) \
            or not isinstance(record.get("features"), dict):
        raise CorruptArtefact(path, "expected {'task': ..., 'features': {...}}")
    if record.get("source") == "data" and record.get("version") != FEATURES_VERSION:
        # Written by another version, whose features differ: comparing it with
        # today's tasks would mismatch silently, so it is made again instead.
        raise CorruptArtefact(path, f"its features are of version {record.get('version')!r}, "
                              f"not {FEATURES_VERSION} (made by another version of snakenas)")
    return record


def features_for(run: dict[str, Any]) -> dict[str, float]:
    """The features a warm start ranks for: declared ones, else (a data task)
    results/{run}/task.json when the task step wrote it, else computed now."""
    own = declared(run)
    if not has_data(run):
        return own
    path = Path(layout.task_json(layout.run_dir(run["name"])))
    if path.is_file():
        return {k: float(v) for k, v in read_task(path)["features"].items()}
    return {**computed(run), **own}
