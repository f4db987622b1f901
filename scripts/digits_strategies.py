"""Strategies against each other on real training: the default digits search.

    python scripts/digits_strategies.py                                 # rea vs bananas, 3 seeds (~5 min on 2 cores)
    python scripts/digits_strategies.py --strategies rea,bananas,random --seeds 2 --workdir /tmp/ds
    python scripts/digits_strategies.py --strategies rea,rea+zc_synflow          # rea screened by synflow

Every run is config/config.yaml's default search (same task, space, recipe,
generations and candidates, so the same number of trainings) with another
strategy and seed, and its `final:` step: the search's 3 best candidates
trained again with 3 fresh seeds each. A search's best validation accuracy is
partly the luck of one training; the re-trained winner's mean is what the
search found. Runs `snakemake` once in --workdir, then prints per run and the
mean per strategy: the best val_acc of the search, after how many trainings
it was found, and the final winner's re-trained val_acc and test_acc. Writes
the table as TSV (--out).
"""

from __future__ import annotations

import argparse
import copy
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import yaml

from nas import layout
from nas.config import load_run
from nas.final import winner_of
from nas.io import read_tsv, write_tsv
from nas.objectives import best_row, objectives_of

REPO = Path(__file__).resolve().parents[1]
COLUMNS = ("run", "strategy", "seed", "trainings", "best_val_acc", "found_after", "final_val_acc", "final_test_acc")


def config(strategies: list[str], seeds: int, keep: float = 0.25) -> dict:
    """The default config's runs, one per strategy and seed (strategy options: config/bench.yaml's, less
    the benchmark's batch sizes: population and candidates stay the default search's). A strategy
    `X+BY` is X with `screen: {by: BY, keep: keep}` (rea+zc_synflow: rea screened by synflow)."""
    default = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    bench = yaml.safe_load((REPO / "config" / "bench.yaml").read_text())["runs"]
    base = default["defaults"]
    runs = {}
    for name in strategies:
        plain, _, by = name.partition("+")
        strategy = copy.deepcopy(base["strategy"]) if plain == base["strategy"]["name"] else \
            copy.deepcopy(bench[plain]["strategy"])
        screen = {"screen": {"by": by, "keep": keep}} if by else {}
        for seed in range(seeds):
            runs[run_name(name, seed)] = {"seed": seed, "strategy": strategy, **copy.deepcopy(screen)}
    return {"defaults": base, "runs": runs}


def run_name(strategy: str, seed: int) -> str:
    return f"{strategy.replace('+', '-')}-s{seed}"


def summarise(workdir: Path, runs: dict, strategies: list[str]) -> list[dict]:
    seeds = {settings["seed"] for settings in runs.values()}
    label = {run_name(s, seed): s for s in strategies for seed in seeds}
    rows = []
    for name, settings in runs.items():
        rdir = workdir / layout.run_dir(name)
        run = load_run(rdir)
        history = read_tsv(rdir / "history.tsv")
        best = best_row(history, objectives_of(run))
        winner = winner_of(rdir)
        rows.append({
            "run": name, "strategy": label[name], "seed": settings["seed"],
            "trainings": len(history), "best_val_acc": float(best["val_acc"]),
            "found_after": history.index(best) + 1,
            "final_val_acc": float(winner["val_acc"]), "final_test_acc": float(winner["test_acc"]),
        })
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--strategies", default="rea,bananas")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--keep", type=float, default=0.25, help="screen.keep of the X+BY strategies")
    parser.add_argument("--workdir", default="results/digits-strategies")
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--out", default=None, help="TSV of the table (default WORKDIR/strategies.tsv)")
    args = parser.parse_args()
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    made = config(args.strategies.split(","), args.seeds, args.keep)
    path = workdir / "config.yaml"
    path.write_text(yaml.safe_dump(made, sort_keys=False))
    snakemake = str(Path(sys.executable).parent / "snakemake")
    start = time.perf_counter()
    subprocess.run([snakemake, "-s", str(REPO / "Snakefile"), "--directory", str(workdir), "--configfile",
                    str(path.resolve()), "--cores", str(args.cores), "--quiet", "rules"], check=True)
    print(f"snakemake: {time.perf_counter() - start:.0f} s wall", flush=True)
    rows = summarise(workdir, made["runs"], args.strategies.split(","))
    write_tsv(Path(args.out or workdir / "strategies.tsv"), COLUMNS, rows)
    print("\t".join(COLUMNS))
    for r in rows:
        print("\t".join(f"{r[c]:.2f}" if isinstance(r[c], float) else str(r[c]) for c in COLUMNS))
    for name in args.strategies.split(","):
        mine = [r for r in rows if r["strategy"] == name]
        print(f"{name}: mean over {len(mine)} seeds: best val_acc {np.mean([r['best_val_acc'] for r in mine]):.2f}, "
              f"found after {np.mean([r['found_after'] for r in mine]):.1f} trainings, re-trained winner val_acc "
              f"{np.mean([r['final_val_acc'] for r in mine]):.2f}, test_acc {np.mean([r['final_test_acc'] for r in mine]):.2f}")


if __name__ == "__main__":
    main()
