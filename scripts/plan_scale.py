"""How long Snakemake takes to plan a long run, and how much memory (docs/planning.md).

For each evaluator and number of generations: `snakemake -n --quiet rules host --cores 2` of
one fresh rea run of G generations x C candidates on the NAS-Bench-201 space,
timed from outside, its peak memory from the kernel (the stub `scontrol` of
tests/no-slurm first on PATH, so the slurm plugin does not wait). The train
evaluator plans one job per candidate (about 52,000 jobs at 1,000 x 50), the
table evaluator one per generation.

    python scripts/plan_scale.py                          100, 200, 1,000 generations x 50, both evaluators
    python scripts/plan_scale.py --one-block              the same, planned in one block (as before blocks)
    python scripts/plan_scale.py --finished 1000          also run a 1,000 x 50 table search to its end,
                                                          then time the plan of the finished run (resume)
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).parent / "snakemake")
NO_SLURM = REPO / "tests" / "no-slurm"
TABLE = REPO.parent / "shared" / "data" / "nb201_accuracy.csv"
# A dry run that prints the job counts but not every job.
PLAN = ("-n", "--quiet", "rules", "host")
# Planned in one block however long: what every run was before blocks.
ONE_BLOCK = 10**9


def config(generations: int, candidates: int, evaluator: str, table: Path, plan_candidates: int | None) -> dict:
    run: dict[str, Any] = {
        "generations": generations, "population": candidates, "candidates": candidates,
        "space": {"name": "nb201"}, "strategy": {"name": "rea", "sample_size": 3},
    }
    if evaluator == "table":
        run["evaluator"] = {"name": "table", "path": str(table), "arch_column": "ArchitectureString",
                            "val_column": "CIFAR10TestAccuracy200Epochs",
                            "test_column": "CIFAR10TestAccuracy200Epochs"}
    cfg: dict[str, Any] = {"runs": {"big": run}}
    if plan_candidates is not None:
        cfg["execution"] = {"plan_candidates": plan_candidates}
    return cfg


def snakemake(workdir: Path, cfg: dict, *args: str, timeout: float) -> tuple[float | None, float, str]:
    """Seconds (None past the timeout), peak resident MB, and the output of one snakemake."""
    (workdir / "config.yaml").write_text(yaml.safe_dump(cfg))
    env = {**os.environ, "PATH": f"{NO_SLURM}{os.pathsep}{os.environ.get('PATH', '')}"}
    cmd = [SNAKEMAKE, "-s", str(REPO / "Snakefile"), "--directory", str(workdir), "--configfile",
           str(workdir / "config.yaml"), "--cores", "2", *args]
    out = workdir / "snakemake.log"
    start = time.perf_counter()
    with open(out, "w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=workdir)
    seconds: float | None = None
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            seconds = time.perf_counter() - start
            break
        if time.perf_counter() - start > timeout:
            # While it plans, snakemake heeds neither SIGINT nor SIGTERM (nothing runs yet to lose).
            proc.kill()
            pid, status, usage = os.wait4(proc.pid, 0)
            break
        time.sleep(0.05)
    text = out.read_text()
    if seconds is not None and os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"snakemake failed in {workdir}:\n{text[-3000:]}")
    return seconds, usage.ru_maxrss / 1024, text


def jobs_planned(text: str) -> str:
    for line in text.splitlines():
        if line.startswith("total"):
            return line.split()[-1]
    return "?"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--generations", default="100,200,1000")
    ap.add_argument("--candidates", type=int, default=50)
    ap.add_argument("--evaluators", default="train,table")
    ap.add_argument("--one-block", action="store_true", help="plan every run in one block (as before blocks)")
    ap.add_argument("--timeout", type=float, default=600, help="seconds before a plan is given up")
    ap.add_argument("--finished", type=int, default=0,
                    help="also run a table search of this many generations to its end and time its plan")
    ap.add_argument("--table", type=Path, default=TABLE)
    args = ap.parse_args()
    args.table = args.table.resolve()  # the runs plan in folders of their own
    if "table" in args.evaluators or args.finished:
        if not args.table.exists():
            sys.exit(f"plan_scale: {args.table} not found; pass --table path/to/nb201_accuracy.csv")
    plan_candidates = ONE_BLOCK if args.one_block else None

    print("evaluator\tgenerations\tcandidates\tjobs planned\tseconds\tpeak MB")
    for evaluator in args.evaluators.split(","):
        for generations in [int(g) for g in args.generations.split(",")]:
            with tempfile.TemporaryDirectory(prefix="plan-") as tmp:
                cfg = config(generations, args.candidates, evaluator, args.table, plan_candidates)
                seconds, mb, text = snakemake(Path(tmp), cfg, *PLAN, timeout=args.timeout)
                shown = f"{seconds:.1f}" if seconds is not None else f"not done after {args.timeout:.0f}"
                print(f"{evaluator}\t{generations}\t{args.candidates}\t{jobs_planned(text)}\t{shown}\t{mb:.0f}",
                      flush=True)

    if args.finished:
        with tempfile.TemporaryDirectory(prefix="plan-") as tmp:
            cfg = config(args.finished, args.candidates, "table", args.table, plan_candidates)
            seconds, mb, _ = snakemake(Path(tmp), cfg, "-q", timeout=10**6)
            print(f"the whole table search, {args.finished} x {args.candidates}: {seconds:.1f} s, peak {mb:.0f} MB")
            seconds, mb, text = snakemake(Path(tmp), cfg, *PLAN, timeout=args.timeout)
            done = "nothing to do" if "Nothing to be done" in text else "jobs to do!"
            print(f"its plan once finished (a resume): {seconds:.1f} s, peak {mb:.0f} MB, {done}")


if __name__ == "__main__":
    main()
