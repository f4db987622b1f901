"""GPU slots of one machine (nas/gpu_slots.py), tested without a GPU: a fake device
list, real processes taking slots at once, and a killed holder's slot coming back."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from nas import gpu_slots
from tests.helpers import REPO, SNAKENAS

# A job: take a slot, note what it was given and when, hold it a while.
JOB = """
import json, os, sys, time
from nas import gpu_slots
gpu = gpu_slots.claim()
start = time.monotonic()
time.sleep(float(sys.argv[2]))
with open(sys.argv[1], "a") as f:
    f.write(json.dumps({"gpu": gpu, "slot": gpu_slots._held["slot"], "visible": os.environ["CUDA_VISIBLE_DEVICES"],
                        "start": start, "end": time.monotonic()}) + "\\n")
"""


def job_env(tmp_path: Path, planned: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("SLURM_JOB_ID", "CUDA_VISIBLE_DEVICES")}
    return {**env, gpu_slots.SLOTS_ENV: planned, "TMPDIR": str(tmp_path)}


def start_job(tmp_path: Path, planned: str, record: Path, hold: float) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", JOB, str(record), str(hold)], cwd=REPO,
                            env=job_env(tmp_path, planned))


def test_local_gpus_are_the_list_given_or_the_machines():
    assert gpu_slots.local_gpus([0, 2]) == ["0", "2"] and gpu_slots.local_gpus([]) == []
    assert gpu_slots.local_gpus("auto", {"CUDA_VISIBLE_DEVICES": "2,3"}) == ["2", "3"]
    assert gpu_slots.local_gpus("auto", {"CUDA_VISIBLE_DEVICES": ""}) == []


def test_auto_finds_the_nvidia_devices(tmp_path):
    for name in ("nvidia1", "nvidia0", "nvidia10", "nvidiactl", "nvidia-uvm", "sda"):
        (tmp_path / name).touch()
    assert gpu_slots.local_gpus("auto", {}, dev=tmp_path) == ["0", "1", "10"]
    assert gpu_slots.local_gpus("auto", {}, dev=tmp_path / "none") == []


def test_the_plan_spreads_over_the_gpus_first():
    assert gpu_slots.plan(["0", "1"], 2) == "0,1x2" and gpu_slots.plan([], 4) == ""
    assert gpu_slots.slots("0,1x2") == [("0", 0), ("1", 0), ("0", 1), ("1", 1)]


def test_concurrent_jobs_share_the_slots_and_none_is_held_twice(tmp_path):
    record = tmp_path / "jobs.jsonl"
    jobs = [start_job(tmp_path, "0,1x2", record, 0.6) for _ in range(6)]
    for job in jobs:
        assert job.wait(timeout=60) == 0
    seen = [json.loads(line) for line in record.read_text().splitlines()]
    assert len(seen) == 6
    assert all(s["visible"] == s["gpu"] for s in seen)  # each job sees its slot's GPU only
    for a in seen:
        same = [b for b in seen if b is not a and (b["gpu"], b["slot"]) == (a["gpu"], a["slot"])]
        assert all(b["end"] <= a["start"] or a["end"] <= b["start"] for b in same), "a slot held twice"
        at_once = [b for b in seen if b["start"] <= a["start"] < b["end"]]
        assert len(at_once) <= 4 and sum(b["gpu"] == a["gpu"] for b in at_once) <= 2
    assert {s["gpu"] for s in seen} == {"0", "1"}


def test_a_killed_jobs_slot_comes_back(tmp_path):
    record = tmp_path / "jobs.jsonl"
    holder = start_job(tmp_path, "7x1", tmp_path / "holder.jsonl", 120)
    lock = gpu_slots_lock(tmp_path, "7", 0)
    deadline = time.monotonic() + 30
    while not (lock.exists() and lock.read_text().strip() == str(holder.pid)) and time.monotonic() < deadline:
        time.sleep(0.02)
    waiter = start_job(tmp_path, "7x1", record, 0.0)
    time.sleep(1.0)
    assert waiter.poll() is None, "the slot was taken twice"
    holder.send_signal(signal.SIGKILL)  # no clean-up of its own: the kernel drops the lock
    holder.wait()
    assert waiter.wait(timeout=10) == 0
    assert json.loads(record.read_text())["gpu"] == "7"


def gpu_slots_lock(tmpdir: Path, gpu: str, k: int) -> Path:
    return tmpdir / f"snakenas-gpu-slots-{os.getuid()}" / f"gpu{gpu}-slot{k}.lock"


def test_no_slot_without_a_plan_or_inside_a_slurm_job(monkeypatch, tmp_path):
    monkeypatch.setattr(gpu_slots, "_held", {})
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.delenv(gpu_slots.SLOTS_ENV, raising=False)
    assert gpu_slots.claim() is None
    monkeypatch.setenv(gpu_slots.SLOTS_ENV, "0x1")
    monkeypatch.setenv("SLURM_JOB_ID", "42")
    assert gpu_slots.claim() is None and not gpu_slots._held


def test_a_training_job_takes_a_slot_before_choosing_its_device(tmp_path):
    """`snakenas train` of a `device: auto` spec on a machine whose plan names GPU 3:
    it holds GPU 3's slot (and, with no GPU here, trains on the CPU)."""
    spec = {"candidate": "c00", "arch": "|skip_connect~0|+|none~0|skip_connect~1|+|none~0|none~1|skip_connect~2|",
            "seed": 1, "run_seed": 0, "space": {"name": "nb201", "channels": 4, "cells_per_stage": 1},
            "task": {"name": "digits", "train_size": 40, "val_size": 20},
            "training": {"epochs": 1, "batch_size": 20, "device": "auto"}, "evaluator": {"name": "train"}}
    path = tmp_path / "c00.yaml"
    path.write_text(yaml.safe_dump(spec))
    proc = subprocess.run([SNAKENAS, "train", str(path), "--out", str(tmp_path / "out")], cwd=tmp_path,
                          env=job_env(tmp_path, "3x1"), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "GPU 3 (slot 0 of 3x1)" in proc.stderr
    assert json.loads((tmp_path / "out" / "metrics.json").read_text())["device"] == "cpu"


def test_a_cpu_training_takes_no_slot(monkeypatch, tmp_path):
    from nas.evaluators.training import device_for

    monkeypatch.setattr(gpu_slots, "_held", {})
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setenv(gpu_slots.SLOTS_ENV, "3x1")
    assert str(device_for("cpu", log=lambda _: None)) == "cpu" and not gpu_slots._held


@pytest.mark.parametrize("given, ok", [("auto", True), ([0, 1], True), ([], True), ("all", False), ([0, 0], False)])
def test_the_options_in_the_schema(given, ok):
    from nas.config import ConfigError, execution_settings, resolve_runs

    config = {"runs": {"r": {}}, "execution": {"local_gpus": given, "trainings_per_gpu": 2}}
    if ok:
        resolve_runs(config)
        assert execution_settings(config)["local_gpus"] == given
    else:
        with pytest.raises(ConfigError, match="local_gpus"):
            resolve_runs(config)
    assert execution_settings({"runs": {"r": {}}})["trainings_per_gpu"] == 4


def test_the_shared_trainers_warm_up_leaves_cuda_alone():
    """The server imports torch once and forks every job: CUDA initialised there would
    be every child's, before the child could choose its GPU."""
    import torch

    from nas import shared_trainer

    shared_trainer._warm_up()
    assert not torch.cuda.is_initialized()
