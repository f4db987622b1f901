"""A tiny search on a real single-node SLURM cluster, through config/profiles/slurm.

The cluster is started by ../shared/slurm/start-local-slurm.sh (it installs
the Debian packages where they are missing) and stopped afterwards. Skipped
only where that cannot happen: no script, not root, or no package source.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.helpers import REPO, snakemake, write_config
from nas import layout
from nas.io import read_json, read_tsv

SLURM_SCRIPTS = REPO.parent / "shared" / "slurm"
START, STOP = SLURM_SCRIPTS / "start-local-slurm.sh", SLURM_SCRIPTS / "stop-local-slurm.sh"


@pytest.fixture(scope="module")
def slurm_cluster():
    if not START.exists():
        pytest.skip(f"no {START}: SLURM cannot be installed here")
    if os.geteuid() != 0:
        pytest.skip("starting a local SLURM needs root")
    started = subprocess.run(["bash", str(START)], capture_output=True, text=True, timeout=900)
    if started.returncode != 0:
        output = started.stdout + started.stderr
        if "apt-get install failed" in output or "missing packages" in output:
            pytest.skip(f"SLURM cannot be installed here:\n{output[-2000:]}")
        raise AssertionError(f"local SLURM did not start:\n{output[-4000:]}")
    yield
    subprocess.run(["bash", str(STOP)], capture_output=True, text=True, timeout=300)


def test_training_jobs_run_as_slurm_jobs(slurm_cluster, tmp_path: Path) -> None:
    write_config(
        tmp_path / "config.yaml",
        {"tiny": {}},
        {
            "generations": 2,
            "population": 3,
            "candidates": 3,
            "space": {"name": "nb201", "channels": 4, "cells_per_stage": 1},
            "task": {"name": "digits", "train_size": 64, "val_size": 64},
            "training": {"epochs": 1, "batch_size": 32},
            "resources": {"mem_mb": 500, "runtime": 5},
        },
    )
    snakemake(
        tmp_path, "--configfile", "config.yaml", "--profile", str(REPO / "config" / "profiles" / "slurm"),
        "--slurm-init-seconds-before-status-checks", "2", timeout=900, slurm=True,
    )
    rdir = tmp_path / "results" / "tiny"
    history = read_tsv(rdir / "history.tsv")
    assert len(history) == 6 and {r["status"] for r in history} == {"ok"}
    job_ids = set()
    for row in history:
        metrics = read_json(layout.metrics(rdir, int(row["generation"]), row["candidate"]))
        job = metrics["job"]["slurm_job_id"]
        assert job, f"{row['generation']}/{row['candidate']} did not run under SLURM"
        job_ids.add(job)
    # The profile packs each generation's three trainings into one cluster job.
    assert len(job_ids) == 2
    accounted = subprocess.run(
        ["sacct", "-X", "-n", "-P", "--format=JobID,State", "-j", ",".join(sorted(job_ids))],
        capture_output=True, text=True, check=True,
    ).stdout.split()
    assert sorted(accounted) == sorted(f"{j}|COMPLETED" for j in job_ids)
