"""The shared trainer: jobs forked from one server train exactly as on their own."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nas import shared_trainer
from nas.config import resolve_runs
from nas.io import read_json, read_tsv, write_yaml
from nas.runner import strategy_for
from nas.search import propose
from tests.helpers import nas_cli

TINY = {
    "space": {"name": "nb201", "channels": 4, "cells_per_stage": 1},
    "task": {"name": "digits", "train_size": 64, "val_size": 64},
    "training": {"epochs": 2, "batch_size": 32},
}


@pytest.fixture(scope="module")
def specs(tmp_path_factory) -> list[Path]:
    folder = tmp_path_factory.mktemp("specs")
    run = resolve_runs({"runs": {"r": {**TINY, "population": 2}}})["r"]
    paths = []
    for spec in propose(run, 0, {}, [], strategy_for(run)):
        paths.append(folder / f"{spec['candidate']}.yaml")
        write_yaml(paths[-1], spec)
    return paths


def result(out: Path) -> tuple[dict, list]:
    metrics = read_json(out / "metrics.json")
    del metrics["train_seconds"], metrics["job"]
    epochs = [{k: v for k, v in row.items() if k != "seconds"} for row in read_tsv(out / "epochs.csv")]
    return metrics, epochs


def server_leaves(socket: Path, within: float = 10) -> bool:
    deadline = time.time() + within
    while socket.exists() and time.time() < deadline:
        time.sleep(0.05)
    return not socket.exists()


def test_jobs_of_one_owner_share_a_server_and_train_as_alone(specs, tmp_path: Path) -> None:
    owner = subprocess.Popen(["sleep", "120"])  # stands for the snakemake process
    try:
        for spec in specs:
            proc = nas_cli("train", str(spec), "--out", str(tmp_path / "shared" / spec.stem),
                           "--shared-trainer", str(owner.pid), cwd=tmp_path)
            assert "no shared trainer" not in proc.stderr
            # The job's stderr (its log) gets the training's lines.
            assert "epoch 2/2" in proc.stderr
        path, _ = shared_trainer.server_for(owner.pid)
        assert path.exists(), "the server should still be up for the owner's next job"
        for spec in specs:
            nas_cli("train", str(spec), "--out", str(tmp_path / "alone" / spec.stem), cwd=tmp_path)
            assert result(tmp_path / "shared" / spec.stem) == result(tmp_path / "alone" / spec.stem)
    finally:
        owner.kill()
        owner.wait()
    assert server_leaves(path), "its owner gone, the server should leave and remove its socket"


def test_a_killed_job_takes_its_training_along(specs, tmp_path: Path) -> None:
    owner = subprocess.Popen(["sleep", "120"])
    spec = tmp_path / "long.yaml"
    spec.write_text(specs[0].read_text().replace("epochs: 2", "epochs: 500"))
    out = tmp_path / "out"
    job = subprocess.Popen([sys.executable, "-m", "nas", "train", str(spec), "--out", str(out),
                            "--shared-trainer", str(owner.pid)], stderr=subprocess.PIPE, text=True)
    try:
        for line in job.stderr:
            if line.startswith("epoch 1/"):
                break
        job.send_signal(signal.SIGKILL)
        job.wait()
        path, _ = shared_trainer.server_for(owner.pid)
        # Nothing else runs in the server: it must have killed the child, so
        # it leaves as soon as the owner does, and no metrics ever appear.
        owner.kill()
        owner.wait()
        assert server_leaves(path)
        assert not (out / "metrics.json").exists()
    finally:
        owner.kill()
        job.kill()


def test_no_server_inside_a_slurm_step_cgroup(monkeypatch) -> None:
    monkeypatch.setenv("SLURM_JOB_ID", "42")
    monkeypatch.setattr(shared_trainer, "_in_step_cgroup", lambda: True)
    assert shared_trainer.server_for(1) is None
    assert shared_trainer.run(["train", "x.yaml", "--out", "y"], 1) is None
    monkeypatch.setattr(shared_trainer, "_in_step_cgroup", lambda: False)
    path, owner = shared_trainer.server_for(1)
    assert path.name.endswith("-slurm42.sock") and owner is None
