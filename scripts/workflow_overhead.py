"""What the workflow costs on one machine beyond the work itself.

Runs the same search twice and prints the seconds of each, their ratio and
the median per-job overhead:

    workflow    `snakemake --cores CORES` on the config (the stub `scontrol` of
                tests/no-slurm first on PATH, so the slurm plugin does not wait)
    in process  one `python` process: nas.runner.run_in_process with the run's
                own evaluator, writing each candidate's spec, metrics.json and
                epochs.csv and each generation's table as the workflow does,
                then the report and the task features (`python -m nas meta
                task`)

Both sides leave out the config's `final:` sections (the final model), so
both do the same work. Their history.tsv must be equal byte for byte but for
the `train_seconds` column (each training's own time): the script fails otherwise.

Per-job overhead: each training job's benchmark seconds (Snakemake's
`benchmark:` file, column s) less its own `train_seconds` (metrics.json);
the median over the run's training jobs.

    python scripts/workflow_overhead.py                 the default search (config/config.yaml)
    python scripts/workflow_overhead.py --small         2 generations x 4 tiny trainings
    python scripts/workflow_overhead.py --pairs 3       3 pairs, workflow and in process alternately
    python scripts/workflow_overhead.py --only workflow one side alone, in a fresh folder (for an
                                                        outside timer to pair the two sides)
"""

from __future__ import annotations

import argparse
import copy
import csv
import io
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from nas import layout

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).parent / "snakemake")
NO_SLURM = REPO / "tests" / "no-slurm"

# --small: the default search's shape, shrunk to seconds (a tiny digits task).
SMALL = {
    "generations": 2, "population": 4, "candidates": 4,
    "task": {"name": "digits", "train_size": 64, "val_size": 64},
    "training": {"epochs": 1, "batch_size": 32},
}


def search_config(path: Path, small: bool) -> dict[str, Any]:
    """The config without its `final:` sections (and shrunk for --small)."""
    config = yaml.safe_load(path.read_text())
    config = copy.deepcopy(config)
    config.setdefault("defaults", {}).pop("final", None)
    for run in (config.get("runs") or {}).values():
        (run or {}).pop("final", None)
    if small:
        config["defaults"].update(copy.deepcopy(SMALL))
    return config


def run_workflow(config: Path, workdir: Path, cores: int) -> float:
    env = {**os.environ, "PATH": f"{NO_SLURM}{os.pathsep}{os.environ.get('PATH', '')}"}
    start = time.perf_counter()
    proc = subprocess.run([SNAKEMAKE, "-s", str(REPO / "Snakefile"), "--directory", str(workdir),
                           "--configfile", str(config), "--cores", str(cores), "-q"],
                          capture_output=True, text=True, env=env, cwd=workdir)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"snakemake failed in {workdir}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return seconds


def run_in_one_process(config: Path, workdir: Path) -> float:
    """The in-process side in a fresh interpreter, timed from outside as snakemake is."""
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, __file__, "--in-process", str(config), str(workdir)],
                          capture_output=True, text=True, cwd=workdir)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"the in-process search failed in {workdir}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return seconds


def in_process(config_path: str, workdir: str) -> None:
    """Every run of the config in this process, its files where the workflow writes them."""
    from nas.config import frozen, load_config, resolve_runs
    from nas.evaluators import evaluator_for
    from nas.evaluators.repeats import evaluate_repeated, write_evaluation
    from nas.io import write_tsv, write_yaml
    from nas.meta.features import write_task
    from nas.report import report
    from nas.runner import run_in_process
    from nas.search import columns

    os.chdir(workdir)
    for name, run in resolve_runs(load_config(config_path)).items():
        rdir = layout.run_dir(name)
        write_yaml(layout.run_config(rdir), frozen(run))
        evaluator = evaluator_for(run)

        def evaluate(spec: dict[str, Any], rdir: str = rdir, evaluator: Any = evaluator) -> dict[str, Any]:
            g, c = spec["generation"], spec["candidate"]
            write_yaml(layout.spec(rdir, g, c), spec)
            result = evaluate_repeated(evaluator, spec, layout.eval_dir(rdir, g, c))
            return write_evaluation(layout.eval_dir(rdir, g, c), result, evaluator.epoch_columns)

        rows = run_in_process(run, evaluate)
        for g in range(run["generations"]):
            write_tsv(layout.table(rdir, g), columns(run), [r for r in rows if int(r["generation"]) == g])
        report(rdir, run["generations"])
        write_task(rdir)


def without_seconds(text: str) -> str:
    """A history.tsv without its `train_seconds` column: the trainings' own times differ run to run."""
    rows = list(csv.reader(io.StringIO(text), delimiter="\t"))
    drop = rows[0].index("train_seconds") if "train_seconds" in rows[0] else None
    return "".join("\t".join(c for i, c in enumerate(r) if i != drop) + "\n" for r in rows)


def job_overheads(rdir: Path, run: dict[str, Any]) -> list[float]:
    """Each training job's benchmark seconds less its own training seconds."""
    from nas.config import candidates_in
    from nas.io import read_json, read_tsv

    overheads = []
    for g in range(run["generations"]):
        for c in range(candidates_in(run, g)):
            bench = Path(layout.benchmark(rdir, "train", g, layout.cand_name(c)))
            if not bench.is_file():
                continue  # not a per-candidate evaluator
            seconds = float(read_tsv(bench)[0]["s"])
            overheads.append(seconds - float(read_json(layout.metrics(rdir, g, c))["train_seconds"]))
    return overheads


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=str(REPO / layout.DEFAULT_CONFIG))
    parser.add_argument("--small", action="store_true", help="2 generations x 4 tiny trainings (seconds each)")
    parser.add_argument("--cores", type=int, default=1)
    parser.add_argument("--pairs", type=int, default=1, help="pairs to run, the two sides alternately")
    parser.add_argument("--only", choices=("workflow", "in-process"), help="run this side alone, print its seconds")
    parser.add_argument("--in-process", nargs=2, metavar=("CONFIG", "WORKDIR"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.in_process:
        in_process(*args.in_process)
        return

    from nas.config import resolve_runs

    config = search_config(Path(args.config), args.small)
    runs = resolve_runs(config)
    if args.only:
        with tempfile.TemporaryDirectory(prefix="overhead-") as tmp:
            config_path = Path(tmp) / "config.yaml"
            config_path.write_text(yaml.safe_dump(config, sort_keys=False))
            (Path(tmp) / "side").mkdir()
            side = Path(tmp) / "side"
            if args.only == "workflow":
                seconds = run_workflow(config_path, side, args.cores)
                overheads = [o for name, run in runs.items() for o in job_overheads(side / layout.run_dir(name), run)]
                print(f"workflow: {seconds:.1f} s, median job overhead {statistics.median(overheads):.2f} s")
            else:
                print(f"in-process: {run_in_one_process(config_path, side):.1f} s")
        return
    print(f"{'pair':>4} {'workflow s':>11} {'in process s':>13} {'ratio':>6} {'median job overhead s':>22}", flush=True)
    results = []
    for pair in range(args.pairs):
        with tempfile.TemporaryDirectory(prefix="overhead-") as tmp:
            tmp_path = Path(tmp)
            config_path = tmp_path / "config.yaml"
            config_path.write_text(yaml.safe_dump(config, sort_keys=False))
            (tmp_path / "wf").mkdir()
            (tmp_path / "ip").mkdir()
            workflow = run_workflow(config_path, tmp_path / "wf", args.cores)
            alone = run_in_one_process(config_path, tmp_path / "ip")
            overheads = []
            for name, run in runs.items():
                rdir = layout.run_dir(name)
                wf = without_seconds((tmp_path / "wf" / layout.history(rdir)).read_text())
                ip = without_seconds((tmp_path / "ip" / layout.history(rdir)).read_text())
                if wf != ip:
                    sys.exit(f"run {name}: the workflow's history.tsv differs from the in-process one "
                             "(train_seconds aside)")
                overheads += job_overheads(tmp_path / "wf" / rdir, run)
        median = statistics.median(overheads) if overheads else float("nan")
        results.append((workflow, alone, median))
        print(f"{pair:>4} {workflow:>11.1f} {alone:>13.1f} {workflow / alone:>6.2f} {median:>22.2f}", flush=True)
    if args.pairs > 1:
        print(f"{'med':>4} {statistics.median(r[0] for r in results):>11.1f} "
              f"{statistics.median(r[1] for r in results):>13.1f} "
              f"{statistics.median(r[0] / r[1] for r in results):>6.2f} "
              f"{statistics.median(r[2] for r in results):>22.2f}")
    print("history.tsv equal (but for the trainings' seconds) in every pair")


if __name__ == "__main__":
    main()
