"""Warm starts on real training: a family of digits tasks.

    python scripts/digits_family.py                       # the experiment of docs/meta.md (~9 min on 2 cores)
    python scripts/digits_family.py --workdir /tmp/fam --seeds 1 --generations 2 --source-generations 1
    python scripts/digits_family.py --config-only fam.yaml  # write the config, run nothing

Writes ONE config: cold searches on a few source variants of the digits task
(the knowledge, `meta.runs`), and for each held-out target variant and seed a
cold REA run and a REA run warm-started from the meta-model built from the
sources only (`warm_start: {model: results/meta}`), with the same budget.
Runs `snakemake` once on it in --workdir (knowledge runs, their task.json,
the model, then the target runs), then reads each run's history.tsv and
reports, per target and seed: the cold run's final best validation accuracy,
after how many trainings the cold run reached it, and after how many the
warm run did ("not reached" if it never did), and what each run's best
architecture scores when trained again with fresh seeds. Writes a TSV, the mean
best-so-far curves (TSV) and a PNG (cold vs warm, one panel per target).
"""

from __future__ import annotations

import argparse
import copy
import math
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from nas.io import read_tsv  # noqa: E402
from nas.search import fitness  # noqa: E402

# What every run shares: the default recipe of config/config.yaml.
DEFAULTS: dict[str, Any] = {
    "seed": 0,
    "population": 8,
    "candidates": 8,
    "space": {"name": "nb201", "channels": 8, "cells_per_stage": 1},
    "strategy": {"name": "rea", "sample_size": 3},
    "task": {"name": "digits", "train_size": 300, "val_size": 300},
    "training": {"epochs": 8, "batch_size": 64, "lr": 0.05},
    "evaluator": {"name": "train"},
}
SOURCE_SEED = 100
# Source variants (knowledge) and held-out targets; no target is a source.
SOURCES: dict[str, dict[str, Any]] = {
    "src-subset": {"classes": [0, 1, 2, 3, 4, 5]},
    "src-rot90": {"rotation": 90},
    "src-noise": {"noise": 0.3},
    "src-size16": {"image_size": 16},
}
TARGETS: dict[str, dict[str, Any]] = {
    "rot180-noise": {"rotation": 180, "noise": 0.3},
    "subset-size6": {"classes": [4, 5, 6, 7, 8, 9], "image_size": 6},
}


def build_config(seeds: int = 5, generations: int = 4, source_generations: int = 3, top: int = 8,
                 filter: int = 2, population: int = 8, candidates: int = 8) -> dict[str, Any]:
    """The experiment's config: sources, then per target and seed a cold and a warm run."""
    defaults = copy.deepcopy(DEFAULTS)
    defaults.update(population=population, candidates=candidates, generations=generations)
    runs: dict[str, Any] = {}
    # Sources get seeds of their own: a run's random architectures depend on its
    # seed only, so a source with a target's seed would have evaluated exactly
    # the cold target run's first generation.
    for i, (name, options) in enumerate(SOURCES.items()):
        runs[name] = {"seed": SOURCE_SEED + i, "generations": source_generations,
                      "task": {**DEFAULTS["task"], **options}}
    for target, options in TARGETS.items():
        for seed in range(seeds):
            task = {**DEFAULTS["task"], **options}
            runs[f"{target}-cold-s{seed}"] = {"seed": seed, "task": task}
            runs[f"{target}-warm-s{seed}"] = {"seed": seed, "task": copy.deepcopy(task),
                                              "warm_start": {"model": "results/meta", "top": top, "filter": filter}}
    return {"defaults": defaults, "runs": runs, "meta": {"runs": list(SOURCES)}}


def best_so_far(rdir: Path) -> list[float]:
    values = [fitness(row) for row in read_tsv(rdir / "history.tsv")]
    return list(np.maximum.accumulate(values)) if values else []


def reached(curve: list[float], level: float) -> int | None:
    """Trainings (1-based, in history order) until the best so far is >= level."""
    return next((i + 1 for i, v in enumerate(curve) if v >= level), None)


RETRAIN_SEED = 9001


def retrained(rdir: Path, seeds: int) -> float | None:
    """Mean val_acc of the run's best architecture trained again with `seeds` fresh
    training seeds (same run seed, so the same split): the best of a search is
    partly a lucky training, and this says how much."""
    if seeds <= 0:
        return None
    from nas.evaluators.train import evaluate
    from nas.io import read_yaml

    rows = read_tsv(rdir / "history.tsv")
    best = max(rows, key=fitness)
    spec = read_yaml(rdir / f"gen_{int(best['generation']):03d}" / "candidates" / f"{best['candidate']}.yaml")
    accs = [evaluate({**spec, "seed": RETRAIN_SEED + i}, log=lambda _: None).metrics["val_acc"] for i in range(seeds)]
    return round(float(np.mean(accs)), 2)


def analyse(workdir: Path, config: dict[str, Any], seeds: int,
            retrain: int = 0) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    rows, curves = [], {}
    for target in TARGETS:
        cold_curves, warm_curves = [], []
        for seed in range(seeds):
            cold = best_so_far(workdir / "results" / f"{target}-cold-s{seed}")
            warm = best_so_far(workdir / "results" / f"{target}-warm-s{seed}")
            final = cold[-1]
            half = len(cold) // 2
            rows.append({
                "target": target, "seed": seed, "trainings": len(cold),
                "cold_final": round(final, 2), "cold_reached_at": reached(cold, final),
                "warm_reached_at": reached(warm, final),
                "warm_final": round(warm[-1], 2),
                "cold_at_half": round(cold[half - 1], 2), "warm_at_half": round(warm[half - 1], 2),
                "warm_within_half": (reached(warm, final) or math.inf) <= half,
                "cold_best_retrained": retrained(workdir / "results" / f"{target}-cold-s{seed}", retrain),
                "warm_best_retrained": retrained(workdir / "results" / f"{target}-warm-s{seed}", retrain),
            })
            cold_curves.append(cold)
            warm_curves.append(warm)
        n = min(map(len, cold_curves + warm_curves))
        curves[target] = {"cold": np.array([c[:n] for c in cold_curves]), "warm": np.array([c[:n] for c in warm_curves])}
    return rows, curves


def _cell(row: dict[str, Any], column: str) -> str:
    if row[column] is None:
        return "not reached" if column.endswith("reached_at") else ""
    return str(row[column])


def write_outputs(rows: list[dict[str, Any]], curves: dict[str, Any], prefix: Path) -> None:
    prefix.parent.mkdir(parents=True, exist_ok=True)
    columns = list(rows[0])
    with open(f"{prefix}.tsv", "w") as f:
        f.write("\t".join(columns) + "\n")
        for row in rows:
            f.write("\t".join(_cell(row, c) for c in columns) + "\n")
    with open(f"{prefix}_curves.tsv", "w") as f:
        f.write("target\ttrainings\tcold_mean\twarm_mean\n")
        for target, c in curves.items():
            for i, (a, b) in enumerate(zip(c["cold"].mean(0), c["warm"].mean(0))):
                f.write(f"{target}\t{i + 1}\t{a:.3f}\t{b:.3f}\n")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(curves), figsize=(5.5 * len(curves), 4), squeeze=False)
    for ax, (target, c) in zip(axes[0], curves.items()):
        x = np.arange(1, c["cold"].shape[1] + 1)
        for kind, colour in (("cold", "tab:blue"), ("warm", "tab:orange")):
            for curve in c[kind]:
                ax.plot(x, curve, color=colour, alpha=0.25, lw=1)
            ax.plot(x, c[kind].mean(0), color=colour, lw=2.5, label=f"{kind} (mean of {len(c[kind])} seeds)")
        ax.axvline(len(x) / 2, color="grey", ls=":", lw=1)
        ax.set_title(f"target {target}")
        ax.set_xlabel("trainings")
        ax.set_ylabel("best validation accuracy so far (%)")
        ax.legend(loc="lower right")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(f"{prefix}.png", dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", type=Path, default=REPO / "results" / "digits-family",
                        help="snakemake's working directory (its results/ holds every run)")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--generations", type=int, default=4, help="of the target runs, cold and warm")
    parser.add_argument("--source-generations", type=int, default=3)
    parser.add_argument("--top", type=int, default=8, help="warm_start.top")
    parser.add_argument("--filter", type=int, default=2, help="warm_start.filter")
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "meta_digits",
                        help="prefix of the TSV and PNG written (default docs/meta_digits)")
    parser.add_argument("--retrain-seeds", type=int, default=3,
                        help="train each run's best architecture again with this many fresh seeds (0: skip)")
    parser.add_argument("--config-only", type=Path, help="write the config there and stop")
    parser.add_argument("--analyse-only", action="store_true", help="read the finished runs of --workdir only")
    args = parser.parse_args()

    config = build_config(args.seeds, args.generations, args.source_generations, args.top, args.filter)
    if args.config_only:
        args.config_only.write_text(yaml.safe_dump(config, sort_keys=False))
        return
    if not args.analyse_only:
        args.workdir.mkdir(parents=True, exist_ok=True)
        config_path = args.workdir / "config.yaml"
        config_path.write_text(yaml.safe_dump(config, sort_keys=False))
        cmd = [str(Path(sys.executable).parent / "snakemake"), "-s", str(REPO / "Snakefile"),
               "--directory", str(args.workdir), "--configfile", str(config_path.resolve()),
               "--cores", str(args.cores), "--quiet", "rules"]
        print("$", " ".join(cmd), flush=True)
        start = time.perf_counter()
        subprocess.run(cmd, check=True)
        print(f"snakemake: {time.perf_counter() - start:.0f} s wall", flush=True)
    rows, curves = analyse(args.workdir, config, args.seeds, args.retrain_seeds)
    write_outputs(rows, curves, args.out)
    print("target\tseed\tcold final\tcold reached at\twarm reached at\twarm final\tcold@half\twarm@half"
          "\tcold best retrained\twarm best retrained")
    for r in rows:
        print(f"{r['target']}\t{r['seed']}\t{r['cold_final']}\t{r['cold_reached_at']}\t"
              f"{r['warm_reached_at'] or 'not reached'}\t{r['warm_final']}\t{r['cold_at_half']}\t{r['warm_at_half']}"
              f"\t{_cell(r, 'cold_best_retrained')}\t{_cell(r, 'warm_best_retrained')}")
    hits = sum(r["warm_within_half"] for r in rows)
    print(f"warm reached the cold run's final best within half the trainings in {hits} of {len(rows)} cases; "
          f"wrote {args.out}.tsv, {args.out}_curves.tsv, {args.out}.png")


if __name__ == "__main__":
    main()
