"""The shared trainer: jobs forked from one server train (and the light steps run) exactly as on their own."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nas import shared_trainer
from nas import layout
from nas.config import frozen, resolve_runs
from nas.io import read_json, read_tsv, write_yaml
from nas.runner import strategy_for
from nas.search import propose
from tests.helpers import SNAKENAS, nas_cli, table_run

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


def step(*args: str, cwd: Path, owner: int | None) -> subprocess.CompletedProcess:
    """`snakenas <args>` as a job of snakemake process `owner` runs it (None: by hand)."""
    env = {k: v for k, v in os.environ.items() if k not in (shared_trainer.OWNER_ENV, "SLURM_JOB_ID")}
    if owner is not None:
        env[shared_trainer.OWNER_ENV] = str(owner)
    return subprocess.run([SNAKENAS, *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=60)


def test_a_light_step_forks_from_the_light_server_and_writes_what_it_would_alone(nb201_table, tmp_path: Path) -> None:
    run = resolve_runs({"runs": {"r": table_run(nb201_table)}})["r"]
    for side in ("served", "alone"):
        write_yaml(tmp_path / side / layout.run_config(layout.run_dir("r")), frozen(run))
    owner = subprocess.Popen(["sleep", "120"])
    try:
        served = step("propose", layout.run_dir("r"), "-g", "0", cwd=tmp_path / "served", owner=owner.pid)
        # Its exit status and its stderr (the job's log) come from the server's child.
        assert served.returncode == 0 and "c00 random" in served.stderr, served.stderr
        light, _ = shared_trainer.server_for(owner.pid, torch=False)
        torch_server, _ = shared_trainer.server_for(owner.pid)
        assert light.exists() and not torch_server.exists(), "a light step starts the light server, never torch's"
        failed = step("propose", "results/missing", "-g", "0", cwd=tmp_path / "served", owner=owner.pid)
        assert failed.returncode == 2 and "error:" in failed.stderr
    finally:
        owner.kill()
        owner.wait()
    alone = step("propose", layout.run_dir("r"), "-g", "0", cwd=tmp_path / "alone", owner=None)
    assert alone.returncode == 0 and alone.stderr == served.stderr
    folder = layout.candidates_dir(layout.run_dir("r"), 0)
    specs = sorted(p.name for p in (tmp_path / "alone" / folder).iterdir())
    assert len(specs) == run["population"]
    for name in specs:
        assert (tmp_path / "served" / folder / name).read_text() == (tmp_path / "alone" / folder / name).read_text()
    assert server_leaves(light), "its owner gone, the light server should leave too"


def test_steps_inside_a_slurm_job_or_by_hand_run_alone(monkeypatch) -> None:
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    monkeypatch.delenv(shared_trainer.OWNER_ENV, raising=False)
    assert shared_trainer.step_owner() is None  # by hand: no snakemake to share with
    monkeypatch.setenv(shared_trainer.OWNER_ENV, "4242")
    assert shared_trainer.step_owner() == 4242
    # In a SLURM job only a group's trainings share a server.
    monkeypatch.setenv("SLURM_JOB_ID", "42")
    assert shared_trainer.step_owner() is None
