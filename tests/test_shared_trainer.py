"""The shared trainer: jobs forked from one server train (and the light steps run) exactly as on their own."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nas import handoff, shared_trainer
from nas import layout
from nas.config import frozen, resolve_runs
from nas.io import read_json, read_tsv, write_yaml
from nas.runner import strategy_for
from nas.search import propose
from nas.tasks import task_class
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
        path = Path(handoff.server_for(owner.pid)[0])
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
        path = Path(handoff.server_for(owner.pid)[0])
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
    monkeypatch.setattr(handoff, "_in_step_cgroup", lambda: True)
    assert handoff.server_for(1) is None
    assert handoff.run(["train", "x.yaml", "--out", "y"], 1) is None
    monkeypatch.setattr(handoff, "_in_step_cgroup", lambda: False)
    path, owner = handoff.server_for(1)
    assert path.endswith("-slurm42.sock") and owner is None


def step(*args: str, cwd: Path, owner: int | None) -> subprocess.CompletedProcess:
    """`snakenas <args>` as a job of snakemake process `owner` runs it (None: by hand)."""
    env = {k: v for k, v in os.environ.items() if k not in (handoff.OWNER_ENV, "SLURM_JOB_ID")}
    if owner is not None:
        env[handoff.OWNER_ENV] = str(owner)
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
        light, torch_server = Path(handoff.server_for(owner.pid, torch=False)[0]), Path(handoff.server_for(owner.pid)[0])
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
    monkeypatch.delenv(handoff.OWNER_ENV, raising=False)
    assert handoff.step_owner() is None  # by hand: no snakemake to share with
    monkeypatch.setenv(handoff.OWNER_ENV, "4242")
    assert handoff.step_owner() == 4242
    # In a SLURM job only a group's trainings share a server.
    monkeypatch.setenv("SLURM_JOB_ID", "42")
    assert handoff.step_owner() is None


def test_the_warm_up_imports_the_runs_task_libraries_only() -> None:
    """The Snakefile names its runs' tasks' libraries (a digits run: sklearn only): the
    server imports those, not torchvision (1.5 s a digits run never uses)."""
    # torch itself stubbed (what is chosen is the question, not torch's import), and a
    # light stand-in for a task's library: only what is named is imported.
    probe = ("import sys, types; stub = types.SimpleNamespace(zeros=lambda *a, **k: None); "
             "stub.optim = types.SimpleNamespace(SGD=lambda *a, **k: None); sys.modules['torch'] = stub; "
             "from nas import shared_trainer; shared_trainer._warm_up(); "
             "print('torchvision' in sys.modules, 'sklearn' in sys.modules, 'colorsys' in sys.modules)")
    env = {**os.environ, shared_trainer.WARM_ENV: "colorsys"}
    out = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False", "True"]
    assert task_class("digits").libraries == ("sklearn.datasets",)
    assert task_class("cifar10").libraries == task_class("voc_segmentation").libraries == ("torchvision",)


def test_the_job_hands_its_step_on_before_it_parses_anything(monkeypatch) -> None:
    """nas/handoff.py reads just enough of the command line to hand it on; anything
    else goes to the command line's parser (None)."""
    handed = []
    monkeypatch.setattr(handoff, "run", lambda argv, owner, torch=True: handed.append((argv, owner, torch)) or 0)
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    monkeypatch.delenv(handoff.OWNER_ENV, raising=False)
    assert handoff.served(["train", "c.yaml", "--out", "o", "--shared-trainer", "17", "--checkpoint"]) == 0
    assert handoff.served(["train", "c.yaml", "--shared-trainer=18", "--out", "o"]) == 0
    assert handed == [(["train", "c.yaml", "--out", "o", "--checkpoint"], 17, True),
                      (["train", "c.yaml", "--out", "o"], 18, True)]
    # Not for a server, or not understood: the parser takes it (and says what is wrong).
    for argv in (["train", "c.yaml", "--out", "o"], ["train", "c.yaml", "--shared-trainer", "x"],
                 ["train", "--help", "--shared-trainer", "1"], ["propose", "r", "-g", "0"], [], ["status"]):
        assert handoff.served(argv) is None
    monkeypatch.setenv(handoff.OWNER_ENV, "4242")
    assert handoff.served(["meta", "task", "r"]) == 0 and handed[-1] == (["meta", "task", "r"], 4242, True)
    assert handoff.served(["propose", "r", "-g", "0"]) == 0 and handed[-1][2] is False
    assert handoff.served(["meta", "build", "--out", "m"]) is None and len(handed) == 4


def test_a_job_imports_no_parser_before_handing_its_step_on() -> None:
    probe = ("import sys; from nas import cli; "
             "print(sorted(m for m in ('argparse', 'json', 'socket', 'typing', 'pathlib') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-S", "-c", f"import sys; sys.path[:0] = {sys.path!r}; " + probe],
                         capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_a_request_reaches_the_server_as_the_job_sent_it() -> None:
    argv = ["train", "c 1.yaml", "", "--out", "ö/x=y"]
    env = {"A": "1", "B": "x=y=z", "EMPTY": "", "LANG": "C.UTF-8"}
    assert handoff.decode_request(handoff.encode_request(argv, "/tmp/a b", env)) == (argv, "/tmp/a b", env)
    assert handoff.decode_request(handoff.encode_request([], "/", {})) == ([], "/", {})
    with pytest.raises(ValueError):
        handoff.decode_request(b"5\0train")
