"""Warm starts on real training: a family of digits tasks.

    python scripts/digits_family.py                       # the experiment of docs/meta.md (~9 min on 2 cores)
    python scripts/digits_family.py --workdir /tmp/fam --seeds 1 --generations 2 --source-generations 1
    python scripts/digits_family.py --oracle              # and an oracle warm start (below), ~5 min more
    python scripts/digits_family.py --config-only fam.yaml  # write the config, run nothing

Writes ONE config: cold searches on a few source variants of the digits task
(the knowledge, `meta.runs`), and for each held-out target variant and seed a
cold REA run and a REA run warm-started from the meta-model built from the
sources only (`warm_start: {model: results/meta}`), with the same budget.
Runs `snakemake` once on it in --workdir (knowledge runs, their task.json,
the model, then the target runs), then reads each run's history.tsv and
reports, per target and seed: the cold run's final best validation accuracy,
after how many candidates the cold run reached it, and after how many the
warm run did ("not reached" if it never did), and what each run's best
architecture scores when trained again with fresh seeds. Writes a TSV, the mean
best-so-far curves (TSV) and a PNG (cold vs warm, one panel per target).

--oracle asks what a perfect meta-model could do: each target's best cells,
found by every run on it and trained again with fresh seeds (so their scores
carry no luck), seed the same warm runs again. Where even these runs do not
reach the cold runs' final best within half the trainings, the criterion
measures the luck of single trainings, not the warm start.
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

from nas import layout
from nas.config import load_run
from nas.io import read_json, read_tsv, read_yaml
from nas.meta.knowledge import Knowledge
from nas.meta.model import MetaModel
from nas.objectives import best_row, best_so_far, fitness, objectives_of

REPO = Path(__file__).resolve().parents[1]

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


def build_config(seeds: int = 5, generations: int = 4, source_generations: int = 6, source_seeds: int = 2,
                 top: int = 8, keep: float = 0.5, population: int = 8, candidates: int = 8, repeats: int = 1,
                 final_top: int = 0, final_repeats: int = 3) -> dict[str, Any]:
    """The experiment's config: sources, then per target and seed a cold and a warm run.
    `repeats`: training.repeats of every search; `final_top` > 0 gives each target run
    a `final:` section that re-trains its top candidates `final_repeats` times."""
    defaults = copy.deepcopy(DEFAULTS)
    defaults.update(population=population, candidates=candidates, generations=generations)
    defaults["training"] = {**defaults["training"], "repeats": repeats}
    final = {"final": {"top": final_top, "repeats": final_repeats}} if final_top else {}
    runs: dict[str, Any] = {}
    # Sources get seeds of their own: a run's random architectures depend on its
    # seed only, so a source with a target's seed would have evaluated exactly
    # the cold target run's first generation.
    for i, (name, options) in enumerate(SOURCES.items()):
        for j in range(source_seeds):
            runs[f"{name}-s{j}"] = {"seed": SOURCE_SEED + i * source_seeds + j, "generations": source_generations,
                                    "task": {**DEFAULTS["task"], **options}}
    sources = list(runs)
    for target, options in TARGETS.items():
        for seed in range(seeds):
            task = {**DEFAULTS["task"], **options}
            runs[f"{target}-cold-s{seed}"] = {"seed": seed, "task": task, **copy.deepcopy(final)}
            runs[f"{target}-warm-s{seed}"] = {"seed": seed, "task": copy.deepcopy(task), **copy.deepcopy(final),
                                              "warm_start": {"model": "results/meta", "top": top},
                                              **({"screen": {"by": "meta", "keep": keep}} if keep < 1 else {})}
    return {"defaults": defaults, "runs": runs, "meta": {"runs": sources}}


def curve(rdir: Path) -> list[float]:
    """The run's best validation accuracy so far, after each training."""
    return best_so_far(read_tsv(layout.history(rdir)), objectives_of(load_run(rdir)))


def reached(curve: list[float], level: float) -> int | None:
    """Trainings (1-based, in history order) until the best so far is >= level."""
    return next((i + 1 for i, v in enumerate(curve) if v >= level), None)


RETRAIN_SEED = 9001


def spec_of(rdir: Path, row: dict[str, Any]) -> dict[str, Any]:
    return read_yaml(layout.spec(rdir, int(row["generation"]), row["candidate"]))


def retrain(spec: dict[str, Any], seeds: int) -> float:
    """Mean val_acc of the spec trained again with `seeds` fresh training seeds
    (same run seed, so the same split)."""
    from nas.evaluators import evaluator_for, training

    evaluator = evaluator_for(spec)
    accs = [training.train({**spec, "seed": RETRAIN_SEED + i}, evaluator, log=lambda _: None).metrics["val_acc"]
            for i in range(seeds)]
    return float(np.mean(accs))


def final_best(rdir: Path) -> float | None:
    """The winner of the run's final re-training (final.tsv): the mean val_acc of its
    re-trainings with fresh seeds, None for a run without a final step."""
    path = Path(layout.final_table(rdir))
    if not path.is_file():
        return None
    winner = [r for r in read_tsv(path) if r["winner"] == "yes"]
    return round(float(winner[0]["val_acc"]), 2) if winner else None


def retrained(rdir: Path, seeds: int) -> float | None:
    """The run's best architecture trained again: the best of a search is partly
    a lucky training, and this says how much."""
    if seeds <= 0:
        return None
    best = best_row(read_tsv(layout.history(rdir)), objectives_of(load_run(rdir)))
    return round(retrain(spec_of(rdir, best), seeds), 2)


# -- the oracle: a warm start from the target's own best cells ------------------------------

ORACLE_POOL = 24  # the target's best-scoring distinct cells, over all its runs, trained again
ORACLE_RETRAIN = 3


def oracle_model(workdir: Path, target: str, top: int) -> list[tuple[str, float]]:
    """A 'meta-model' that knows the target itself: the ORACLE_POOL cells that
    scored best in any of the target's runs, each trained again ORACLE_RETRAIN
    times; the mean of those fresh trainings (free of the luck that picked the
    cells) is its score. Written to results/oracle-{target}/ without a predictor,
    so it ranks these cells only. Returns the `top` cells with their means."""
    results = workdir / "results"
    rows = [(rdir, row) for rdir in sorted(results.glob(f"{target}-*-s*")) if "-oracle-" not in rdir.name
            for row in read_tsv(layout.history(rdir))]
    objectives = {rdir: objectives_of(load_run(rdir)) for rdir, _ in rows}
    rows.sort(key=lambda item: -fitness(item[1], objectives[item[0]]))
    pool: dict[str, tuple[Path, dict[str, Any]]] = {}
    for rdir, row in rows:
        if len(pool) == ORACLE_POOL:
            break
        pool.setdefault(row["arch"], (rdir, row))
    features = read_json(results / f"{target}-cold-s0" / "task.json")["features"]
    knowledge = Knowledge()
    means = {}
    for arch, (rdir, row) in pool.items():
        means[arch] = retrain(spec_of(rdir, row), ORACLE_RETRAIN)
        knowledge.add(f"oracle {target}", features, arch, means[arch])
    model = MetaModel.build(knowledge, DEFAULTS["space"])
    model.weights = None  # no predictor: only the cells measured here rank
    folder = results / f"oracle-{target}"
    knowledge.write(folder)
    model.save(folder)
    return sorted(means.items(), key=lambda item: -item[1])[:top]


def oracle_config(config: dict[str, Any], seeds: int) -> dict[str, Any]:
    """The warm runs again, warm-started from the oracle instead of results/meta."""
    runs = {}
    for target in TARGETS:
        for seed in range(seeds):
            run = copy.deepcopy(config["runs"][f"{target}-warm-s{seed}"])
            run["warm_start"] = {**run["warm_start"], "model": f"results/oracle-{target}"}
            run.pop("screen", None)  # the oracle's seeds alone: no screen
            runs[f"{target}-oracle-s{seed}"] = run
    return {"defaults": config["defaults"], "runs": runs}


def analyse(workdir: Path, config: dict[str, Any], seeds: int, retrain_seeds: int = 0,
            oracle: bool = False) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    rows, curves = [], {}
    for target in TARGETS:
        cold_curves, warm_curves, oracle_curves = [], [], []
        for seed in range(seeds):
            cold = curve(workdir / "results" / f"{target}-cold-s{seed}")
            warm = curve(workdir / "results" / f"{target}-warm-s{seed}")
            extra = {}
            if oracle:
                by_oracle = curve(workdir / "results" / f"{target}-oracle-s{seed}")
                oracle_curves.append(by_oracle)
                extra = {"oracle_reached_at": reached(by_oracle, cold[-1]), "oracle_final": round(by_oracle[-1], 2)}
            final = cold[-1]
            half = len(cold) // 2
            rows.append({
                "target": target, "seed": seed, "candidates": len(cold),
                "cold_final": round(final, 2), "cold_reached_at": reached(cold, final),
                "warm_reached_at": reached(warm, final),
                "warm_final": round(warm[-1], 2),
                "cold_at_half": round(cold[half - 1], 2), "warm_at_half": round(warm[half - 1], 2),
                "warm_within_half": (reached(warm, final) or math.inf) <= half,
                **({"cold_best_retrained": retrained(workdir / "results" / f"{target}-cold-s{seed}", retrain_seeds),
                    "warm_best_retrained": retrained(workdir / "results" / f"{target}-warm-s{seed}", retrain_seeds)}
                   if retrain_seeds else {}),
                "cold_final_winner": final_best(workdir / "results" / f"{target}-cold-s{seed}"),
                "warm_final_winner": final_best(workdir / "results" / f"{target}-warm-s{seed}"),
                **extra,
            })
            cold_curves.append(cold)
            warm_curves.append(warm)
        n = min(map(len, cold_curves + warm_curves + oracle_curves))
        curves[target] = {kind: np.array([c[:n] for c in group]) for kind, group in
                          (("cold", cold_curves), ("warm", warm_curves), ("oracle", oracle_curves)) if group}
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
    kinds = [k for k in ("cold", "warm", "oracle") if all(k in c for c in curves.values())]
    with open(f"{prefix}_curves.tsv", "w") as f:
        f.write("\t".join(["target", "candidates", *(f"{k}_mean" for k in kinds)]) + "\n")
        for target, c in curves.items():
            means = [c[k].mean(0) for k in kinds]
            for i in range(len(means[0])):
                f.write("\t".join([target, str(i + 1), *(f"{m[i]:.3f}" for m in means)]) + "\n")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(curves), figsize=(5.5 * len(curves), 4), squeeze=False)
    for ax, (target, c) in zip(axes[0], curves.items()):
        x = np.arange(1, c["cold"].shape[1] + 1)
        for kind, colour in (("cold", "tab:blue"), ("warm", "tab:orange"), ("oracle", "tab:green")):
            if kind not in c:
                continue
            for run_curve in c[kind]:
                ax.plot(x, run_curve, color=colour, alpha=0.25, lw=1)
            ax.plot(x, c[kind].mean(0), color=colour, lw=2.5, label=f"{kind} (mean of {len(c[kind])} seeds)")
        ax.axvline(len(x) / 2, color="grey", ls=":", lw=1)
        ax.set_title(f"target {target}")
        ax.set_xlabel("candidates evaluated (each the mean of training.repeats trainings)")
        ax.set_ylabel("best validation accuracy so far (%)")
        ax.legend(loc="lower right")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(f"{prefix}.png", dpi=110)
    plt.close(fig)


def targets(config: dict[str, Any]) -> list[str]:
    """Every run's history and, for a run with a `final:` section, its final table
    (its re-trainings, not the export, which the experiment does not need)."""
    defaults = config.get("defaults", {})
    return [layout.final_table(layout.run_dir(name)) if run.get("final", defaults.get("final"))
            else layout.history(layout.run_dir(name)) for name, run in config["runs"].items()]


def snakemake(workdir: Path, config: dict[str, Any], name: str, cores: int) -> None:
    """One snakemake call on `config` (written to workdir/name) in workdir."""
    path = workdir / name
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    cmd = [str(Path(sys.executable).parent / "snakemake"), "-s", str(REPO / "Snakefile"), "--directory", str(workdir),
           "--configfile", str(path.resolve()), "--cores", str(cores), "--quiet", "rules", "--", *targets(config)]
    print("$", " ".join(cmd), flush=True)
    start = time.perf_counter()
    subprocess.run(cmd, check=True)
    print(f"snakemake: {time.perf_counter() - start:.0f} s wall", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", type=Path, default=REPO / "results" / "digits-family",
                        help="snakemake's working directory (its results/ holds every run)")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--generations", type=int, default=4, help="of the target runs, cold and warm")
    parser.add_argument("--source-generations", type=int, default=6,
                        help="of each source run (6 x 8 trainings: the default search)")
    parser.add_argument("--source-seeds", type=int, default=2, help="source runs per source variant")
    parser.add_argument("--top", type=int, default=8, help="warm_start.top")
    parser.add_argument("--keep", type=float, default=0.5,
                        help="screen.keep of the warm runs (a screen by the meta-model; 1: no screen)")
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "meta_digits",
                        help="prefix of the TSV and PNG written (default docs/meta_digits)")
    parser.add_argument("--repeats", type=int, default=2, help="training.repeats of every search")
    parser.add_argument("--final-top", type=int, default=3,
                        help="each target run's final step re-trains its top N candidates (0: no final step)")
    parser.add_argument("--final-repeats", type=int, default=3, help="fresh seeds of each final re-training")
    parser.add_argument("--retrain-seeds", type=int, default=0,
                        help="also train each run's best architecture again with this many fresh seeds, "
                             "outside the workflow (0: skip; the final step does it)")
    parser.add_argument("--oracle", action="store_true",
                        help="also warm-start each target's runs from the target's own best cells "
                             "(retrained; results/oracle-TARGET): what a perfect meta-model could do")
    parser.add_argument("--config-only", type=Path, help="write the config there and stop")
    parser.add_argument("--analyse-only", action="store_true", help="read the finished runs of --workdir only")
    args = parser.parse_args()

    config = build_config(args.seeds, args.generations, args.source_generations, args.source_seeds, args.top,
                          args.keep, repeats=args.repeats, final_top=args.final_top,
                          final_repeats=args.final_repeats)
    if args.config_only:
        args.config_only.write_text(yaml.safe_dump(config, sort_keys=False))
        return
    if not args.analyse_only:
        args.workdir.mkdir(parents=True, exist_ok=True)
        snakemake(args.workdir, config, "config.yaml", args.cores)
        if args.oracle:
            for target in TARGETS:
                cells = oracle_model(args.workdir, target, args.top)
                print(f"oracle {target}: " + ", ".join(f"{mean:.2f}" for _, mean in cells)
                      + f" (mean of {ORACLE_RETRAIN} fresh trainings, the {len(cells)} best of {ORACLE_POOL})")
            snakemake(args.workdir, oracle_config(config, args.seeds), "oracle.yaml", args.cores)
    rows, curves = analyse(args.workdir, config, args.seeds, args.retrain_seeds, args.oracle)
    write_outputs(rows, curves, args.out)
    columns = list(rows[0])
    print("\t".join(columns))
    for r in rows:
        print("\t".join(_cell(r, c) for c in columns))
    for target, c in curves.items():
        cold_final = c["cold"][:, -1].mean()
        for kind in ("warm", "oracle"):
            if kind in c:
                at = reached(list(c[kind].mean(0)), cold_final - 1e-9)
                print(f"{target}: mean of the cold runs' final best {cold_final:.2f}; the {kind} runs' mean best "
                      f"so far reaches it after {at or 'never'} of {c[kind].shape[1]} candidates")
    if args.oracle:
        hits = sum((r["oracle_reached_at"] or math.inf) <= r["candidates"] // 2 for r in rows)
        print(f"oracle reached the cold run's final best within half the trainings in {hits} of {len(rows)} cases")
    hits = sum(r["warm_within_half"] for r in rows)
    print(f"(old criterion) warm reached the cold run's final best within half the candidates in {hits} of "
          f"{len(rows)} cases")
    for target, c in curves.items():
        cold_final = c["cold"][:, -1].mean()
        at = reached(list(c["warm"].mean(0)), cold_final - 1e-9)
        half = c["cold"].shape[1] // 2
        print(f"(a) {target}: warm's mean curve reaches cold's mean final best {cold_final:.2f} after "
              f"{at or 'never'} of {c['cold'].shape[1]} candidates: {'met' if at and at <= half else 'not met'}")
        mine = [r for r in rows if r["target"] == target]
        if all(r["cold_final_winner"] is not None and r["warm_final_winner"] is not None for r in mine):
            cold = np.mean([r["cold_final_winner"] for r in mine])
            warm = np.mean([r["warm_final_winner"] for r in mine])
            better = sum(r["warm_final_winner"] >= r["cold_final_winner"] for r in mine)
            print(f"(b) {target}: re-trained best (final winner, mean over seeds) warm {warm:.2f} vs cold "
                  f"{cold:.2f}: {'met' if warm >= cold else 'not met'} (warm >= cold in {better} of {len(mine)})")
    print(f"wrote {args.out}.tsv, {args.out}_curves.tsv, {args.out}.png")


if __name__ == "__main__":
    main()
