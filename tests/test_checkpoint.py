"""training.checkpoint: a killed training resumes from its last epoch with the same result."""

from __future__ import annotations

import csv
import json
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch
import yaml

from nas import layout, steps
from nas.evaluators import training
from tests.helpers import train

ARCH = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"


def spec(epochs: int = 3, train_size: int = 200, seed: int = 7) -> dict:
    return {
        "candidate": "c00",
        "arch": ARCH,
        "space": {"name": "nb201", "channels": 4, "cells_per_stage": 1},
        "task": {"name": "digits", "train_size": train_size, "val_size": 100},
        "training": {"epochs": epochs, "batch_size": 32},
        "evaluator": {"name": "train"},
        "seed": seed,
        "run_seed": 0,
    }


def without_clock(metrics: dict) -> dict:
    """Less what measures the clock or the machine (train_seconds, job)."""
    return {k: v for k, v in metrics.items() if k not in ("train_seconds", "job")}


def epoch_rows(out: Path) -> list[dict]:
    with open(out / "epochs.csv", newline="") as f:
        return [{k: v for k, v in row.items() if k != "seconds"} for row in csv.DictReader(f, delimiter="\t")]


def test_a_killed_training_resumes_with_the_same_result(tmp_path):
    # Enough images that an epoch takes a while: the kill lands between epochs.
    spec_path = tmp_path / "c00.yaml"
    spec_path.write_text(yaml.safe_dump(spec(epochs=4, train_size=600)))
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    checkpoint = Path(layout.checkpoint_in(killed))
    cmd = [sys.executable, "-m", "nas", "train", str(spec_path), "--out", str(killed), "--checkpoint"]

    first = subprocess.Popen(cmd, cwd=tmp_path, stderr=subprocess.PIPE, text=True)
    with ThreadPoolExecutor(1) as pool:
        reference = pool.submit(steps.evaluate, spec_path, whole)  # the uninterrupted run, meanwhile
        try:
            deadline = time.monotonic() + 60
            while not checkpoint.exists() and first.poll() is None and time.monotonic() < deadline:
                time.sleep(0.005)
            assert first.poll() is None, "the training ended before it could be killed:\n" + first.stderr.read()
            assert checkpoint.exists(), "no checkpoint after 60 s"
            first.send_signal(signal.SIGKILL)
        finally:
            first.kill()
            first.wait()
        reference.result()
    saved = torch.load(checkpoint, weights_only=True)["epoch"]
    assert 1 <= saved < 4 and not (killed / "metrics.json").exists()

    second = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert second.returncode == 0, second.stderr
    assert f"resumed from epoch {saved}" in second.stderr
    assert [line for line in second.stderr.splitlines() if line.startswith("epoch ")][0].startswith(f"epoch {saved + 1}/4")
    assert without_clock(json.loads((killed / "metrics.json").read_text())) == without_clock(
        json.loads((whole / "metrics.json").read_text())
    )
    assert epoch_rows(killed) == epoch_rows(whole) and len(epoch_rows(whole)) == 4
    assert not checkpoint.exists(), "the checkpoint outlives the finished training"


@pytest.fixture
def kept_checkpoint(tmp_path, monkeypatch):
    """A finished 2-epoch training's checkpoint, which `remove` would have deleted."""
    path = tmp_path / "checkpoint.pt"
    monkeypatch.setattr(training.Checkpoint, "remove", lambda self: None)
    reference = train(spec(epochs=2), checkpoint_dir=path.parent)
    monkeypatch.undo()
    assert torch.load(path, weights_only=True)["epoch"] == 2
    return path, reference


def test_resuming_after_the_last_epoch_gives_the_same_metrics(kept_checkpoint):
    path, reference = kept_checkpoint
    lines = []
    again = train(spec(epochs=2), log=lines.append, checkpoint_dir=path.parent)
    assert any(line.startswith("resumed from epoch 2") for line in lines)
    assert not any(line.startswith("epoch ") for line in lines)
    assert without_clock(again.metrics) == without_clock(reference.metrics) and again.epochs == reference.epochs
    assert not path.exists()


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty"])
def test_a_damaged_checkpoint_is_ignored_and_training_starts_over(kept_checkpoint, damage):
    path, reference = kept_checkpoint
    data = path.read_bytes()
    path.write_bytes({"truncated": data[: len(data) // 2], "garbage": b"\x80\x04not a checkpoint", "empty": b""}[damage])
    lines = []
    again = train(spec(epochs=2), log=lines.append, checkpoint_dir=path.parent)
    assert any("ignored: unreadable" in line and "training from epoch 1" in line for line in lines), lines
    assert [line.split("/")[0] for line in lines if line.startswith("epoch ")] == ["epoch 1", "epoch 2"]
    assert without_clock(again.metrics) == without_clock(reference.metrics)
    assert not path.exists()


def test_a_checkpoint_of_another_spec_is_ignored(kept_checkpoint):
    path, _ = kept_checkpoint
    other = spec(epochs=2, seed=8)
    lines = []
    result = train(other, log=lines.append, checkpoint_dir=path.parent)
    assert any("ignored: it belongs to another spec" in line for line in lines), lines
    assert not any("resumed" in line for line in lines)
    fresh = train(other)
    assert without_clock(result.metrics) == without_clock(fresh.metrics)


def test_without_the_option_no_checkpoint_is_read_or_written(kept_checkpoint, tmp_path):
    path, _ = kept_checkpoint
    spec_path = tmp_path / "c00.yaml"
    spec_path.write_text(yaml.safe_dump(spec(epochs=2)))
    out = path.parent  # holds a checkpoint the step must leave alone
    before = path.read_bytes()
    steps.evaluate(spec_path, out)
    assert path.read_bytes() == before
    fresh = tmp_path / "fresh"
    steps.evaluate(spec_path, fresh)
    assert not Path(layout.checkpoint_in(fresh)).exists()
