"""Tasks: shapes without torch, fixed splits, and the torchvision loaders on tiny fake data."""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys

import numpy as np
import pytest
import torch

from nas.tasks import TASKS, TaskError
from tests.helpers import REPO, check, describe, load, write_cifar10, write_image_folder


def test_describe_and_check_do_not_import_torch():
    code = ("import sys; from nas.tasks import task_for; task_for({'name': 'digits'}).check(); "
            "print(task_for({'name': 'cifar100'}).describe()); assert 'torch' not in sys.modules")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "num_classes=100" in out.stdout


@pytest.mark.parametrize(
    "name, shape, classes",
    [("digits", (1, 8, 8), 10), ("mnist", (1, 28, 28), 10), ("cifar10", (3, 32, 32), 10), ("cifar100", (3, 32, 32), 100)],
)
def test_describe(name, shape, classes):
    info = describe({"name": name})
    assert info.input_shape == shape and info.num_classes == classes


def test_digits_splits_are_fixed_per_seed_and_disjoint():
    cfg = {"name": "digits", "train_size": 200, "val_size": 150}
    a, b, c = load(cfg, 0), load(cfg, 0), load(cfg, 1)
    assert len(a.train) == 200 and len(a.val) == 150 and len(a.test) == 599
    assert torch.equal(a.train.tensors[0], b.train.tensors[0]) and torch.equal(a.val.tensors[1], b.val.tensors[1])
    assert not torch.equal(a.val.tensors[0], c.val.tensors[0])
    # The test split does not depend on the run seed.
    assert torch.equal(a.test.tensors[1], c.test.tensors[1])
    x, y = a.train[0]
    assert x.shape == (1, 8, 8) and 0 <= int(y) < 10
    # Normalised with the training images' statistics.
    assert abs(float(a.train.tensors[0].mean())) < 1e-5 and abs(float(a.train.tensors[0].std()) - 1) < 1e-2


def test_digits_split_indices_are_disjoint():
    from nas.tasks.splits import cap, hold_out

    kept, held = hold_out(100, 30, seed=4)
    assert len(kept) == 70 and len(held) == 30 and not set(kept) & set(held)
    assert (cap(kept, 10, 4) == cap(kept, 10, 4)).all() and set(cap(kept, 10, 4)) <= set(kept)
    with pytest.raises(ValueError, match="lower val_size"):
        hold_out(10, 10, 0)


def test_too_large_val_size_is_a_task_error():
    with pytest.raises(TaskError, match="val_size"):
        load({"name": "digits", "val_size": 5000}, 0)


@pytest.mark.parametrize(
    "cfg, message",
    [
        ({"name": "imagenet"}, "unknown task 'imagenet'"),
        ({"name": "cifar10"}, "needs task.root"),
        ({"name": "cifar10", "root": "/no/such"}, "/no/such/cifar-10-batches-py/data_batch_1 not found"),
        ({"name": "svhn", "root": "/no/such"}, "train_32x32.mat not found"),
        ({"name": "mnist", "root": "/no/such"}, "MNIST/raw"),
        ({"name": "image_folder", "root": "/no/such"}, "/no/such/train not found"),
        ({"name": "digits", "train_size": 0}, "train_size"),
        ({"name": "digits", "val_size": "300"}, "task.val_size must be a whole number"),
        ({"name": "digits", "train_size": 2.5}, "train_size"),
        ({"name": "image_folder", "root": "/no/such", "test_size": 0}, "test_size"),
        ({"name": "svhn", "download": True}, "needs task.root"),
    ],
)
def test_bad_task_configs_name_the_problem(cfg, message):
    with pytest.raises(TaskError, match=message.replace(".", r"\.")):
        check(cfg)


def test_download_true_skips_the_file_check(tmp_path):
    check({"name": "cifar10", "root": str(tmp_path), "download": True})


def test_mnist_check_accepts_raw_or_legacy_processed_files(tmp_path):
    cfg = {"name": "fashion_mnist", "root": str(tmp_path)}
    with pytest.raises(TaskError, match="FashionMNIST/raw/train-images-idx3-ubyte not found"):
        check(cfg)
    (tmp_path / "FashionMNIST" / "processed").mkdir(parents=True)
    for name in ("training.pt", "test.pt"):
        (tmp_path / "FashionMNIST" / "processed" / name).touch()
    check(cfg)


def test_root_expands_the_home_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "data" / "train" / "cat").mkdir(parents=True)
    assert describe({"name": "image_folder", "root": "~/data"}).num_classes == 1


def test_every_task_name_is_in_the_schema():
    import yaml

    schema = yaml.safe_load((REPO / "config" / "schema.yaml").read_text())
    assert tuple(schema["$defs"]["run"]["properties"]["task"]["properties"]["name"]["enum"]) == tuple(TASKS)


# -- torchvision loaders on tiny fake data -------------------------------------------


@pytest.mark.parametrize("in_memory", [False, True])
def test_cifar10_loader_on_fake_batches(tmp_path, monkeypatch, in_memory):
    write_cifar10(tmp_path, monkeypatch)
    cfg = {"name": "cifar10", "root": str(tmp_path), "val_size": 10, "train_size": 20, "in_memory": in_memory}
    check(cfg)
    splits = load(cfg, seed=3)
    assert len(splits.train) == 20 and len(splits.val) == 10 and len(splits.test) == 12
    x, y = splits.train[0]
    assert x.shape == (3, 32, 32) and x.dtype == torch.float32 and 0 <= y < 10
    assert splits.classes == tuple(f"c{i}" for i in range(10))

    def val_images(seed):
        val = load(cfg, seed=seed).val
        return torch.stack([val[i][0] for i in range(len(val))])

    assert torch.equal(val_images(3), val_images(3)) and not torch.equal(val_images(3), val_images(4))


def test_corrupted_cifar10_files_are_a_task_error(tmp_path, monkeypatch):
    # Files in place but with checksums torchvision does not know: its own check refuses them.
    write_cifar10(tmp_path, monkeypatch, patch_checksums=False)
    cfg = {"name": "cifar10", "root": str(tmp_path), "val_size": 10}
    check(cfg)
    with pytest.raises(TaskError, match=re.escape(f"task.root: {tmp_path}: Dataset not found or corrupted")):
        load(cfg, seed=0)


def _idx(path, array: np.ndarray, code: int) -> None:
    header = bytes([0, 0, code, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    path.write_bytes(header + array.tobytes())


def test_mnist_loader_on_fake_idx_files(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 30), ("t10k", 8)):
        _idx(raw / f"{prefix}-images-idx3-ubyte", rng.integers(0, 255, (n, 28, 28), dtype=np.uint8), 0x08)
        _idx(raw / f"{prefix}-labels-idx1-ubyte", rng.integers(0, 10, n, dtype=np.uint8), 0x08)
    splits = load({"name": "mnist", "root": str(tmp_path), "val_size": 5}, seed=0)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (25, 5, 8)
    assert splits.train[0][0].shape == (1, 28, 28)


def test_svhn_loader_on_fake_mat_files(tmp_path, monkeypatch):
    from scipy.io import savemat
    from torchvision.datasets import SVHN

    rng = np.random.default_rng(0)
    sums = {}
    for split, n in (("train", 16), ("test", 6)):
        path = tmp_path / f"{split}_32x32.mat"
        savemat(path, {"X": rng.integers(0, 255, (32, 32, 3, n), dtype=np.uint8),
                       "y": rng.integers(1, 11, (n, 1), dtype=np.uint8)})
        sums[split] = hashlib.md5(path.read_bytes()).hexdigest()
    split_list = {k: [v[0], v[1], sums.get(k, v[2])] for k, v in SVHN.split_list.items()}
    monkeypatch.setattr(SVHN, "split_list", split_list)
    splits = load({"name": "svhn", "root": str(tmp_path), "val_size": 4}, seed=0)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (12, 4, 6)
    assert splits.test[0][0].shape == (3, 32, 32)


def test_image_folder_with_and_without_test_folder(tmp_path):
    write_image_folder(tmp_path / "a" / "train", ["cat", "dog", "eel"], 6)
    cfg = {"name": "image_folder", "root": str(tmp_path / "a"), "image_size": 16, "val_size": 3}
    assert describe(cfg).num_classes == 3 and describe(cfg).input_shape == (3, 16, 16)
    splits = load(cfg, seed=0)
    assert len(splits.test) == 3 and len(splits.val) == 3 and len(splits.train) == 12
    assert splits.train[0][0].shape == (3, 16, 16)
    write_image_folder(tmp_path / "a" / "test", ["cat", "dog", "eel"], 2)
    assert len(load(cfg, seed=0).test) == 6
    val = [torch.stack([v[i][0] for i in range(len(v))]) for v in (load(cfg, 1).val, load(cfg, 1).val, splits.val)]
    assert torch.equal(val[0], val[1]) and not torch.equal(val[0], val[2])


def test_image_folder_class_without_images_is_a_task_error(tmp_path):
    write_image_folder(tmp_path / "train", ["cat"], 2)
    (tmp_path / "train" / "dog").mkdir()
    with pytest.raises(TaskError, match="dog"):
        load({"name": "image_folder", "root": str(tmp_path), "val_size": 1}, seed=0)
