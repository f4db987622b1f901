"""Per-candidate overhead of training jobs on SLURM, with and without grouping.

Runs one generation of N tiny trainings (digits, 1 epoch, a fraction of a
second of training each) through config/profiles/slurm on a running cluster,
once per mode, and prints per mode:

    cluster jobs   SLURM allocations the trainings took
    wall           the whole snakemake call
    alloc s/cand   seconds of SLURM allocation per candidate (sacct Elapsed)
    overhead/cand  (allocation seconds - training seconds) / N: what a
                   candidate costs beyond its own training

    python scripts/cluster_overhead.py --candidates 8
(start a cluster first, e.g. ../shared/slurm/start-local-slurm.sh)
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).parent / "snakemake")

MODES = {
    "one job per candidate": {"group": 1, "shared_trainer": False},
    "grouped": {"group": None, "shared_trainer": False},
    "grouped + shared trainer": {"group": None, "shared_trainer": True},
}


def run_mode(n: int, group: int, shared: bool, workdir: Path) -> dict[str, float]:
    config = {
        "execution": {"shared_trainer": shared, "train_retries": 0},
        "defaults": {
            "generations": 1, "population": n, "candidates": n,
            "space": {"name": "nb201", "channels": 4, "cells_per_stage": 1},
            "task": {"name": "digits", "train_size": 64, "val_size": 64},
            "training": {"epochs": 1, "batch_size": 32},
            "resources": {"mem_mb": 500, "runtime": 5},
        },
        "runs": {"overhead": {}},
    }
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    start = time.perf_counter()
    proc = subprocess.run(
        [SNAKEMAKE, "-s", str(REPO / "Snakefile"), "--directory", str(workdir), "--configfile", str(workdir / "config.yaml"),
         "--profile", str(REPO / "config" / "profiles" / "slurm"), "--slurm-init-seconds-before-status-checks", "2",
         "--group-components", f"train_{{run}}_{{g}}={group}", "-q"],
        capture_output=True, text=True,
    )
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"snakemake failed in {workdir}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    metrics = [json.loads(p.read_text()) for p in sorted(workdir.glob("results/overhead/gen_000/evals/*/metrics.json"))]
    jobs = sorted({m["job"]["slurm_job_id"] for m in metrics})
    elapsed = subprocess.run(["sacct", "-X", "-n", "-P", "--format=ElapsedRaw", "-j", ",".join(jobs)],
                             capture_output=True, text=True, check=True).stdout.split()
    alloc = sum(float(e) for e in elapsed)
    train = sum(m["train_seconds"] for m in metrics)
    return {"jobs": len(jobs), "wall": wall, "alloc": alloc / n, "overhead": (alloc - train) / n}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--candidates", type=int, default=8)
    args = parser.parse_args()
    n = args.candidates
    print(f"{'mode':<26} {'cluster jobs':>12} {'wall s':>8} {'alloc s/cand':>13} {'overhead s/cand':>16}")
    for name, mode in MODES.items():
        with tempfile.TemporaryDirectory() as tmp:
            r = run_mode(n, mode["group"] or n, mode["shared_trainer"], Path(tmp))
        print(f"{name:<26} {r['jobs']:>12} {r['wall']:>8.1f} {r['alloc']:>13.1f} {r['overhead']:>16.1f}", flush=True)


if __name__ == "__main__":
    main()
