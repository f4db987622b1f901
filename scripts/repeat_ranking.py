"""How well repeated trainings rank cells: two independent evaluations of the same cells.

    python scripts/repeat_ranking.py                               # the figures of docs/final.md (~3 min on 2 cores)
    python scripts/repeat_ranking.py --cells 12 --repeats 2 --task '{}'

Draws `cells` random NB201 cells (channels 8, one cell per stage) and
evaluates each twice, A and B, as the train evaluator does with
`training.repeats: k` for k = 1 .. `repeats`: the trainings of a repeat have
the seeds `nas.evaluators.repeats` gives them, A's derived from one candidate
seed and B's from another, so A and B share no training. Prints the Spearman
rank correlation between A and B for each k, beside what averaging alone
predicts from k = 1 (Spearman-Brown: k r / (1 + (k - 1) r)), and the mean
over every split of the 2 x `repeats` trainings of a cell into two disjoint
groups of k (a steadier estimate of the same). Default task: the noisy digits
variant of the meta-learning experiment, {rotation: 180, noise: 0.3}.
"""

from __future__ import annotations

import argparse
import itertools
import multiprocessing
import time
from typing import Any

import numpy as np
import yaml

from nas.evaluators import evaluator_for
from nas.evaluators.repeats import repeat_spec
from nas.spaces import make_space

SPACE = {"name": "nb201", "channels": 8, "cells_per_stage": 1}
# The candidate seeds of evaluation A and B of cell i: 2 * i and 2 * i + 1 (far apart once derived).
SEEDS = ("A", "B")


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    ranks = [np.argsort(np.argsort(x)).astype(float) for x in (a, b)]
    return float(np.corrcoef(*ranks)[0, 1])


def _train(spec: dict[str, Any]) -> float:
    from nas.evaluators import training

    return training.train(spec, evaluator_for(spec), log=lambda _: None).metrics["val_acc"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cells", type=int, default=48)
    parser.add_argument("--repeats", type=int, default=3, help="the largest k")
    parser.add_argument("--task", type=yaml.safe_load, default={"rotation": 180, "noise": 0.3},
                        help="digits variant options as YAML")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--train-size", type=int, default=300)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--seed", type=int, default=7, help="draws the cells")
    args = parser.parse_args()

    space = make_space(SPACE)
    rng = np.random.default_rng(args.seed)
    archs: list[str] = []
    while len(archs) < args.cells:  # distinct cells
        arch = space.to_string(space.sample(rng))
        if arch not in archs:
            archs.append(arch)
    specs = []
    for i, arch in enumerate(archs):
        for e in range(2):
            candidate = {
                "arch": arch, "space": SPACE, "seed": 2 * i + e, "run_seed": 0,
                "task": {"name": "digits", "train_size": args.train_size, "val_size": 300, **args.task},
                "training": {"epochs": args.epochs, "batch_size": 64, "repeats": args.repeats},
                "evaluator": {"name": "train"},
            }
            specs += [repeat_spec(candidate, r) for r in range(args.repeats)]
    start = time.perf_counter()
    with multiprocessing.get_context("fork").Pool(args.jobs) as pool:
        acc = np.array(pool.map(_train, specs, chunksize=4)).reshape(args.cells, 2, args.repeats)
    seconds = time.perf_counter() - start
    print(f"task {args.task}: {args.cells} cells x 2 evaluations x {args.repeats} trainings = {acc.size} trainings "
          f"in {seconds:.0f} s on {args.jobs} processes; cells' mean val_acc {acc.mean((1, 2)).min():.1f}-"
          f"{acc.mean((1, 2)).max():.1f} %, seed noise (std) {acc.reshape(args.cells, -1).std(1, ddof=1).mean():.2f}")
    single = spearman(acc[:, 0, 0], acc[:, 1, 0])
    flat = acc.reshape(args.cells, -1)
    print("repeats\tA vs B\tpredicted by averaging\tmean over disjoint splits")
    for k in range(1, args.repeats + 1):
        ab = spearman(acc[:, 0, :k].mean(1), acc[:, 1, :k].mean(1))
        predicted = k * single / (1 + (k - 1) * single)
        splits = []
        for group in itertools.combinations(range(flat.shape[1]), k):
            rest = [j for j in range(flat.shape[1]) if j not in group]
            for other in itertools.combinations(rest, k):
                if group < other:
                    splits.append(spearman(flat[:, list(group)].mean(1), flat[:, list(other)].mean(1)))
        print(f"{k}\t{ab:.2f}\t{predicted:.2f}\t{np.mean(splits):.2f} ({len(splits)} splits)")


if __name__ == "__main__":
    main()
