"""Data held in memory (nas/tasks/memory.py) and augmentation on batches (nas/tasks/augment.py).

The in-memory loader must draw the generic DataLoader's batches bit for bit on
the CPU, for a fixed seed, over several epochs (the generator's draws too), on
the real torchvision readers of fabricated files; decoding happens once per
data set (the cache); crop_flip is checked on a hand-made image.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.utils.data import DataLoader

from nas.tasks import TaskError
from nas.tasks import memory
from nas.tasks.augment import CropFlip, black, crop_flip, draw_crop_flip, padding_for
from nas.tasks.memory import Batches, MemorySet
from tests.helpers import check, load, write_cifar10, write_image_folder


def epochs_of(loader, epochs: int = 3) -> list[list[tuple[torch.Tensor, torch.Tensor]]]:
    return [[(x.clone(), y.clone()) for x, y in loader] for _ in range(epochs)]


def assert_same_batches(a, b) -> None:
    assert len(a) == len(b)
    for epoch_a, epoch_b in zip(a, b):
        assert len(epoch_a) == len(epoch_b)
        for (xa, ya), (xb, yb) in zip(epoch_a, epoch_b):
            assert xa.dtype == xb.dtype and torch.equal(xa, xb) and torch.equal(ya, yb)


def generic_and_held(held: MemorySet, generic, batch_size: int, seed: int = 7):
    """Three epochs of the generic DataLoader over `generic` and of Batches over
    `held`, each shuffled by a generator of `seed`, and both generators' states after."""
    ga, gb = torch.Generator().manual_seed(seed), torch.Generator().manual_seed(seed)
    a = epochs_of(DataLoader(generic, batch_size=batch_size, shuffle=True, generator=ga))
    b = epochs_of(Batches(held, batch_size, shuffle=True, generator=gb))
    return a, b, ga.get_state(), gb.get_state()


@pytest.mark.parametrize("batch_size", [7, 10, 64])  # a short last batch, an exact one, one batch
def test_batches_are_the_dataloaders_on_tensors(batch_size):
    x = torch.randn(30, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    y = torch.arange(30) % 3
    a, b, state_a, state_b = generic_and_held(MemorySet(x, y), torch.utils.data.TensorDataset(x, y), batch_size)
    assert_same_batches(a, b)
    assert torch.equal(state_a, state_b)  # the next epoch, and a checkpoint's loader_rng, agree too
    assert len(Batches(MemorySet(x, y), batch_size)) == len(a[0])


def test_in_order_batches_are_the_dataloaders():
    x, y = torch.arange(50.0).view(5, 1, 10, 1), torch.arange(5)
    held = [(bx, by) for bx, by in Batches(MemorySet(x, y), 2)]
    generic = list(DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=2))
    assert_same_batches([held], [generic])


def test_digits_in_memory_and_generic_give_the_same_batches():
    cfg = {"name": "digits", "train_size": 100, "val_size": 50}
    held, generic = load({**cfg, "in_memory": True}, 1).train, load({**cfg, "in_memory": False}, 1).train
    assert isinstance(held, MemorySet) and not isinstance(generic, MemorySet)
    a, b, _, _ = generic_and_held(held, generic, 32)
    assert_same_batches(a, b)


def test_cifar10_in_memory_is_torchvisions_pipeline_bit_for_bit(tmp_path, monkeypatch):
    write_cifar10(tmp_path, monkeypatch, n=12)
    cfg = {"name": "cifar10", "root": str(tmp_path), "val_size": 10, "train_size": 40}
    held, generic = load({**cfg, "in_memory": True}, 3), load({**cfg, "in_memory": False}, 3)
    assert isinstance(held.train, MemorySet) and held.train.images.dtype == torch.uint8
    a, b, state_a, state_b = generic_and_held(held.train, generic.train, 16)
    assert_same_batches(a, b)
    assert torch.equal(state_a, state_b)
    for split in ("val", "test"):  # measured in order, in evaluation batches
        assert_same_batches([list(DataLoader(getattr(generic, split), batch_size=8))],
                            [list(Batches(getattr(held, split), 8))])
    assert held.classes == generic.classes and held.preprocess == generic.preprocess


def test_image_folder_in_memory_is_the_generic_loaders(tmp_path):
    write_image_folder(tmp_path / "train", ["cat", "dog"], 5)
    cfg = {"name": "image_folder", "root": str(tmp_path), "image_size": 12, "val_size": 2}
    held, generic = load({**cfg, "in_memory": True}, 0), load({**cfg, "in_memory": False}, 0)
    a, b, _, _ = generic_and_held(held.train, generic.train, 3)
    assert_same_batches(a, b)
    assert_same_batches([list(DataLoader(generic.test, batch_size=4))], [list(Batches(held.test, 4))])


def test_a_data_set_is_decoded_once_and_a_damaged_cache_is_made_again(tmp_path, monkeypatch):
    monkeypatch.setenv(memory.CACHE_ENV, str(tmp_path / "cache"))
    calls = []

    def build():
        calls.append(1)
        return {"x": np.arange(6, dtype=np.uint8).reshape(2, 3)}

    key = {"task": "t", "sources": "abc"}
    first = memory.decoded(key, build)
    again = memory.decoded(key, build)
    assert len(calls) == 1 and np.array_equal(first["x"], again["x"])
    files = list((tmp_path / "cache" / "data").glob("*.npz"))
    assert len(files) == 1
    files[0].write_bytes(files[0].read_bytes()[:40])  # truncated, as by a killed writer on a full disk
    lines = []
    assert np.array_equal(memory.decoded(key, build, log=lines.append)["x"], first["x"])
    assert len(calls) == 2 and "unreadable" in lines[0]
    memory.decoded({**key, "sources": "changed"}, build)
    assert len(calls) == 3


def test_cifar10_jobs_after_the_first_read_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv(memory.CACHE_ENV, str(tmp_path / "cache"))
    write_cifar10(tmp_path / "data", monkeypatch, n=6)
    cfg = {"name": "cifar10", "root": str(tmp_path / "data"), "val_size": 4}
    first = load(cfg, 0)
    from torchvision import datasets

    def refuse(*args, **kwargs):
        raise AssertionError("decoded again")

    monkeypatch.setattr(datasets, "CIFAR10", refuse)
    assert torch.equal(load(cfg, 0).train.images, first.train.images)


def test_auto_holds_what_fits_and_kinds_without_memory_sets_refuse_true():
    assert memory.wanted("auto", memory.IN_MEMORY_BYTES) and not memory.wanted("auto", memory.IN_MEMORY_BYTES + 1)
    assert memory.wanted(True, 1 << 40) and not memory.wanted(False, 1)
    with pytest.raises(TaskError, match="in_memory=true: its data is read through the generic loader"):
        check({"name": "digits_canvas", "in_memory": True})
    with pytest.raises(TaskError, match="option augment='crop_flip': choose one of: none"):
        check({"name": "digits_canvas", "augment": "crop_flip"})
    with pytest.raises(TaskError, match="option in_memory='yes'"):
        check({"name": "digits", "in_memory": "yes"})


# -- crop_flip ---------------------------------------------------------------------------


def test_crop_flip_on_a_hand_made_image():
    image = torch.arange(16.0).view(1, 1, 4, 4)  # rows 0-3, 4-7, 8-11, 12-15
    fill = [-1.0]
    # Offset (0, 0) of a 1-pixel padding: the padded top row and left column come in.
    top_left = crop_flip(image, torch.tensor([[0, 0]]), torch.tensor([False]), 1, fill)
    assert top_left[0, 0].tolist() == [[-1, -1, -1, -1], [-1, 0, 1, 2], [-1, 4, 5, 6], [-1, 8, 9, 10]]
    # The centre (offset = padding) is the image; mirrored, each row reversed.
    assert torch.equal(crop_flip(image, torch.tensor([[1, 1]]), torch.tensor([False]), 1, fill), image)
    mirrored = crop_flip(image, torch.tensor([[1, 1]]), torch.tensor([True]), 1, fill)
    assert torch.equal(mirrored, image.flip(-1))
    # Bottom right, mirrored: crop then mirror, so the fill column ends up on the left.
    corner = crop_flip(image, torch.tensor([[2, 2]]), torch.tensor([True]), 1, fill)
    assert corner[0, 0].tolist() == [[-1, 7, 6, 5], [-1, 11, 10, 9], [-1, 15, 14, 13], [-1, -1, -1, -1]]


def test_crop_flip_treats_each_image_and_channel_on_its_own():
    x = torch.arange(2 * 2 * 3 * 3, dtype=torch.float32).view(2, 2, 3, 3)
    out = crop_flip(x, torch.tensor([[1, 1], [0, 2]]), torch.tensor([True, False]), 1, [-5.0, -7.0])
    assert torch.equal(out[0], x[0].flip(-1))
    assert out[1, 0, 0].tolist() == [-5, -5, -5] and out[1, 1, 0].tolist() == [-7, -7, -7]
    assert out[1, 0, 1].tolist() == [x[1, 0, 0, 1].item(), x[1, 0, 0, 2].item(), -5]


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 5), c=st.integers(1, 3), h=st.integers(2, 9), w=st.integers(2, 9), seed=st.integers(0, 99))
def test_crop_flip_keeps_shapes_and_moves_only_pixels(n, c, h, w, seed):
    x = torch.rand(n, c, h, w, generator=torch.Generator().manual_seed(seed)) + 1.0  # > 0: fill is 0
    augment = CropFlip(h, [0.0] * c)
    out = augment(x, torch.Generator().manual_seed(seed))
    assert out.shape == x.shape
    values = set(x.flatten().tolist()) | {0.0}
    assert set(out.flatten().tolist()) <= values
    again = augment(x, torch.Generator().manual_seed(seed))
    assert torch.equal(out, again)  # the draws are the generator's only


def test_draws_and_padding():
    offsets, flips = draw_crop_flip(1000, 4, torch.Generator().manual_seed(0))
    assert offsets.shape == (1000, 2) and offsets.min() == 0 and offsets.max() == 8
    assert 400 < int(flips.sum()) < 600
    assert (padding_for(32), padding_for(28), padding_for(8), padding_for(2)) == (4, 4, 1, 1)
    assert black({"mean": [0.5, 0.25], "std": [0.5, 0.25]}) == [-1.0, -1.0]


# -- in the training loop ----------------------------------------------------------------

ARCH = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"


def digits_spec(task: dict | None = None, training_options: dict | None = None, epochs: int = 3) -> dict:
    return {
        "candidate": "c00", "arch": ARCH, "seed": 7, "run_seed": 0,
        "space": {"name": "nb201", "channels": 4, "cells_per_stage": 1},
        "task": {"name": "digits", "train_size": 150, "val_size": 60, **(task or {})},
        "training": {"epochs": epochs, "batch_size": 32, **(training_options or {})},
        "evaluator": {"name": "train"},
    }


def without_clock(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if k != "train_seconds"}


def test_an_augmented_training_resumes_with_the_same_result(tmp_path, monkeypatch):
    from nas.evaluators import training
    from tests.helpers import train

    spec = digits_spec({"augment": "crop_flip"})
    whole = train(spec)
    assert without_clock(whole.metrics) != without_clock(train(digits_spec()).metrics)  # it does something
    save = training.Checkpoint.save

    def killed_after_epoch_1(self, epoch, *args, **kwargs):
        save(self, epoch, *args, **kwargs)
        if epoch == 1:
            raise KeyboardInterrupt  # not a result: the loop lets it through, as a kill

    monkeypatch.setattr(training.Checkpoint, "save", killed_after_epoch_1)
    with pytest.raises(KeyboardInterrupt):
        train(spec, checkpoint_dir=tmp_path)
    monkeypatch.undo()
    assert torch.load(tmp_path / "checkpoint.pt", weights_only=True)["augment_rng"] is not None
    lines = []
    again = train(spec, log=lines.append, checkpoint_dir=tmp_path)
    assert "resumed from epoch 1" in "\n".join(lines)
    assert without_clock(again.metrics) == without_clock(whole.metrics)
    assert [{k: v for k, v in row.items() if k != "seconds"} for row in again.epochs] == \
        [{k: v for k, v in row.items() if k != "seconds"} for row in whole.epochs]


def test_bf16_and_channels_last_train_on_the_cpu():
    from tests.helpers import train

    result = train(digits_spec(training_options={"precision": "bf16", "channels_last": True}, epochs=2))
    plain = train(digits_spec(epochs=2))
    assert result.metrics["status"] == "ok" and np.isfinite(result.metrics["val_loss"])
    assert result.metrics["params"] == plain.metrics["params"]
    assert result.metrics["val_loss"] != plain.metrics["val_loss"]  # bfloat16 forward passes round otherwise
