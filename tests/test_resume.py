"""Kill the real snakemake mid-generation, resume, and get the same search.

Uses real training on a tiny digits task, because that is what a killed
cluster job interrupts; the table evaluator would finish too fast to kill.
"""

from __future__ import annotations

import base64
import csv
import io
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from nas import layout
from tests.helpers import REPO, SNAKEMAKE, kill_when, snakemake, table_run, without_slurm, write_config

TINY = {
    "seed": 1,
    "generations": 2,
    "population": 2,
    "candidates": 4,
    "space": {"name": "nb201", "channels": 4, "cells_per_stage": 1},
    "strategy": {"name": "rea", "sample_size": 2},
    "task": {"name": "digits", "train_size": 60, "val_size": 60},
    "training": {"epochs": 2, "batch_size": 32},
}


def without_timing(tsv: str) -> str:
    """history.tsv less train_seconds: the one column that measures the clock."""
    rows = list(csv.reader(io.StringIO(tsv), delimiter="\t"))
    drop = rows[0].index("train_seconds")
    return "\n".join("\t".join(c for i, c in enumerate(r) if i != drop) for r in rows)


def deterministic_files(run_dir: Path) -> dict[str, bytes]:
    """Every artefact whose bytes must not depend on timing."""
    files = {}
    for path in sorted(run_dir.rglob("*")):
        rel = path.relative_to(run_dir).as_posix()
        if path.is_file() and (rel.endswith(".yaml") or rel.endswith("state.json")) and rel != "best.yaml":
            files[rel] = path.read_bytes()
    best = yaml.safe_load((run_dir / "best.yaml").read_text())
    del best["metrics"]["train_seconds"]
    files["best.yaml"] = yaml.safe_dump(best).encode()
    return files


def done_jobs(work: Path, generations: str) -> list[Path]:
    """Metrics of training jobs that Snakemake has recorded as finished.

    A job killed after writing its output but before Snakemake saw it end is
    unfinished to Snakemake (it keeps an 'incomplete' marker) and runs again.
    """
    incomplete = work / ".snakemake" / "incomplete"
    done = []
    for path in sorted(work.glob(f"results/tiny/{generations}/evals/*/metrics.json")):
        marker = base64.b64encode(str(path.relative_to(work)).encode()).decode()
        if not (incomplete / marker).exists():
            done.append(path)
    return done


def test_sigkill_mid_generation_then_resume_equals_uninterrupted(tmp_path):
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    for work in (straight, killed):
        work.mkdir()
        write_config(work / "config.yaml", {"tiny": TINY})
    snakemake(straight, "--configfile", "config.yaml")

    cmd = [SNAKEMAKE, "-s", str(REPO / "Snakefile"), "--directory", str(killed), "--cores", "2",
           "--configfile", "config.yaml"]
    proc = subprocess.Popen(cmd, cwd=killed, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True, env=without_slurm())
    deadline = time.time() + 300
    while not done_jobs(killed, "gen_001") and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    # Kill snakemake and every job it started, as a lost node or an OOM killer would.
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (killed / "results/tiny/gen_001/table.tsv").exists(), "killed too late: generation 1 had finished"
    finished = {p: p.stat().st_mtime_ns for p in done_jobs(killed, "gen_*")}
    assert 2 + 1 <= len(finished) < 2 + 4

    # A kill leaves Snakemake's lock behind; it says to --unlock, then the same command resumes.
    locked = snakemake(killed, "--configfile", "config.yaml", check=False)
    assert locked.returncode != 0 and "--unlock" in locked.stdout + locked.stderr
    snakemake(killed, "--configfile", "config.yaml", "--unlock")
    snakemake(killed, "--configfile", "config.yaml")

    # Only the unfinished jobs ran again.
    assert {p: p.stat().st_mtime_ns for p in finished} == finished
    a, b = straight / "results/tiny", killed / "results/tiny"
    assert without_timing((a / "history.tsv").read_text()) == without_timing((b / "history.tsv").read_text())
    assert deterministic_files(a) == deterministic_files(b)
    assert len((b / "history.tsv").read_text().splitlines()) == 1 + 2 + 4


@pytest.mark.parametrize(
    "step, output",
    [
        ("propose", lambda run: layout.candidates_dir(run, 2)),
        # A table's look-ups: one job evaluates the whole generation.
        ("evaluate", lambda run: layout.metrics(run, 1, 0)),
        ("aggregate", lambda run: layout.table(run, 1)),
    ],
)
def test_sigkill_during_a_step_then_resume_gives_identical_history(step, output, tmp_path, nb201_table):
    """Killed while one step runs (its log exists, its output not yet): after
    --unlock and the same command, every file is as in an uninterrupted run,
    history.tsv byte for byte (the table evaluator measures no clock)."""
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    for work in (straight, killed):
        work.mkdir()
        write_config(work / "config.yaml", {"r": table_run(nb201_table, generations=3)})
    snakemake(straight, "--configfile", "config.yaml")

    run = layout.run_dir("r")
    g = 2 if step == "propose" else 1
    log = killed / layout.log(run, step, g)
    kill_when(killed, log, "--configfile", "config.yaml")
    assert log.exists() and not (killed / output(run)).exists(), f"{step} was not caught running"

    snakemake(killed, "--configfile", "config.yaml", "--unlock")
    snakemake(killed, "--configfile", "config.yaml")
    a, b = straight / run, killed / run
    assert (a / "history.tsv").read_bytes() == (b / "history.tsv").read_bytes()
    assert deterministic_files(a) == deterministic_files(b)


def test_a_second_snakemake_on_the_same_results_is_refused(tmp_path, nb201_table):
    write_config(tmp_path / "config.yaml", {"r": table_run(nb201_table, generations=3)})
    first = subprocess.Popen(
        [SNAKEMAKE, "-s", str(REPO / "Snakefile"), "--directory", str(tmp_path), "--cores", "2", "--configfile",
         "config.yaml"],
        cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=without_slurm(),
    )
    locks = tmp_path / ".snakemake" / "locks"
    deadline = time.time() + 120
    while not (locks.is_dir() and any(locks.iterdir())) and first.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    second = snakemake(tmp_path, "--configfile", "config.yaml", check=False)
    assert second.returncode != 0
    assert "Directory cannot be locked" in second.stdout + second.stderr
    # The first goes on undisturbed.
    assert first.wait(timeout=300) == 0
    history = (tmp_path / "results/r/history.tsv").read_text().splitlines()
    assert len(history) == 1 + 6 + 4 + 4
