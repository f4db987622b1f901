"""scikit-learn's bundled 8x8 handwritten digits: the task that needs no download."""

from __future__ import annotations

from typing import Any

import numpy as np

from nas.tasks import Splits, TaskError, describe
from nas.tasks.splits import cap, hold_out

# A fixed third of the 1,797 images is the test split, whatever the run seed.
TEST_SHARE = 1 / 3
TEST_SEED = 0
DEFAULT_VAL_SIZE = 300


def load_digits_splits(cfg: dict[str, Any], seed: int) -> Splits:
    import torch
    from sklearn.datasets import load_digits
    from torch.utils.data import TensorDataset

    data = load_digits()
    images = data.images.astype(np.float32) / 16.0
    labels = data.target.astype(np.int64)
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

    def dataset(idx: np.ndarray) -> TensorDataset:
        x = torch.from_numpy((images[idx] - mean) / std).unsqueeze(1)
        return TensorDataset(x, torch.from_numpy(labels[idx]))

    return Splits(describe(cfg), dataset(train), dataset(val), dataset(test))
