"""How far apart random backbones land on a segmentation task, against training noise.

    python scripts/seg_spread.py                                   # the example config's task, 16 x 2 trainings
    python scripts/seg_spread.py --backbones 24 --seeds 2 --workers 2 --out /tmp/spread.tsv

Takes the space, task and recipe of a config's first run (default
config/examples/segmentation.yaml), trains `backbones` random architectures
of its space with `seeds` training seeds each (in `workers` processes of one
thread each), and prints: the range of the backbones' mean val_miou, the mean
per-backbone standard deviation over seeds (the noise), their ratio, the
rank correlation between seeds, and the median seconds of a training (its
train_seconds: building, training and measuring, one core). Writes one row
per training as TSV (--out).
"""

from __future__ import annotations

import argparse
import itertools
import multiprocessing
import statistics
from typing import Any

import numpy as np

from nas.config import load_config, resolve_runs
from nas.evaluators import evaluator_for, training
from nas.io import write_tsv
from nas.predictors import spearman
from nas.spaces import make_space

COLUMNS = ("backbone", "seed", "arch", "status", "val_miou", "val_pixel_acc", "test_miou", "params", "flops",
           "train_seconds")


def _train(spec: dict[str, Any]) -> dict[str, Any]:
    metrics = training.train(spec, evaluator_for(spec), log=lambda _: None).metrics
    return {"backbone": spec["candidate"], "seed": spec["seed"], "arch": spec["arch"],
            **{k: metrics[k] for k in COLUMNS[3:]}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="config/examples/segmentation.yaml")
    parser.add_argument("--backbones", type=int, default=16)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()

    run = next(iter(resolve_runs(load_config(args.config)).values()))
    space = make_space(run["space"])
    rng = np.random.default_rng(1)
    archs = [space.to_string(space.sample(rng)) for _ in range(args.backbones)]
    specs = [{"candidate": i, "arch": arch, "space": run["space"], "task": run["task"], "training": run["training"],
              "evaluator": run["evaluator"], "seed": 1000 * s + i, "run_seed": run["seed"]}
             for i, arch in enumerate(archs) for s in range(args.seeds)]
    with multiprocessing.get_context("fork").Pool(args.workers) as pool:
        rows = pool.map(_train, specs, chunksize=1)
    if args.out:
        write_tsv(args.out, COLUMNS, rows)
    miou = np.array([r["val_miou"] for r in rows]).reshape(args.backbones, args.seeds)
    means = miou.mean(1)
    seconds = statistics.median(r["train_seconds"] for r in rows)
    line = (f"{run['task']['name']} on {run['space']['name']}: {args.backbones} backbones x {args.seeds} seeds: "
            f"mean val_miou {means.min():.1f}-{means.max():.1f} % (median {np.median(means):.1f}, "
            f"spread {means.max() - means.min():.1f})")
    if args.seeds > 1:  # the noise needs two trainings of a backbone
        noise = miou.std(1, ddof=1).mean()
        rho = [spearman(miou[:, a], miou[:, b]) for a, b in itertools.combinations(range(args.seeds), 2)]
        line += (f", seed noise (mean std) {noise:.2f}, spread / noise {(means.max() - means.min()) / noise:.1f}, "
                 f"rank correlation between seeds {np.mean(rho):.2f}")
    print(f"{line}, median {seconds:.1f} s a training")


if __name__ == "__main__":
    main()
