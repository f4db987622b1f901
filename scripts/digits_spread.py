"""How far apart random cells land on the digits task, against training noise.

    python scripts/digits_spread.py --epochs 8 --train-size 300 --cells 16 --seeds 3
    python scripts/digits_spread.py --task '{rotation: 180, noise: 0.3}'   # a variant of the task

Trains `cells` random NB201 cells (channels 8, one cell per stage) with
`seeds` training seeds each and prints: the range of the cells' mean
validation accuracy, the mean per-cell standard deviation over seeds (the
noise), the mean Spearman rank correlation between seeds, and seconds per
training. A useful default task spreads cells far more than the noise.
"""

from __future__ import annotations

import argparse
import itertools
import time

import numpy as np
import yaml

from nas.evaluators import evaluator_for, training
from nas.spaces import make_space


def ranks(values: np.ndarray) -> np.ndarray:
    return np.argsort(np.argsort(values)).astype(float)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--train-size", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--cells", type=int, default=16)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--task", type=yaml.safe_load, default={},
                        help="digits variant options as YAML, e.g. '{classes: [4, 5, 6], image_size: 6}'")
    args = parser.parse_args()

    space_cfg = {"name": "nb201", "channels": 8, "cells_per_stage": 1}
    space = make_space(space_cfg)
    rng = np.random.default_rng(1)
    archs = [space.to_string(space.sample(rng)) for _ in range(args.cells)]
    acc = np.zeros((args.cells, args.seeds))
    start = time.perf_counter()
    for i, arch in enumerate(archs):
        for s in range(args.seeds):
            spec = {
                "arch": arch, "space": space_cfg, "seed": 1000 * s + i, "run_seed": 0,
                "task": {"name": "digits", "train_size": args.train_size, "val_size": 300, **args.task},
                "training": {"epochs": args.epochs, "batch_size": args.batch_size}, "evaluator": {"name": "train"},
            }
            acc[i, s] = training.train(spec, evaluator_for(spec), log=lambda _: None).metrics["val_acc"]
    seconds = (time.perf_counter() - start) / acc.size
    means = acc.mean(1)
    rho = [np.corrcoef(ranks(acc[:, a]), ranks(acc[:, b]))[0, 1] for a, b in itertools.combinations(range(args.seeds), 2)]
    print(f"task {args.task or 'plain'}: epochs {args.epochs} train_size {args.train_size} batch {args.batch_size}: "
          f"cells {means.min():.1f}-{means.max():.1f} % (median {np.median(means):.1f}), "
          f"seed noise {acc.std(1).mean():.1f}, rank correlation {np.mean(rho):.2f}, {seconds:.2f} s per training")


if __name__ == "__main__":
    main()
