"""Zero-cost proxies of NAS-Bench-201 cells against the benchmark's accuracies.

Every cell of a fixed random sample (or all 15,625) is built at C=16, N=5 for
32x32 inputs and 10 classes, as the benchmark trained it, initialised with
PyTorch's defaults from a seed of its own, and scored by synflow (data-free:
the only proxy here that needs no CIFAR images, which cannot be had here);
params and flops come from the space's torch-free cost. Writes one row per
cell and prints each proxy's Spearman correlation with each accuracy column.

    python scripts/zc_nb201.py --table ../shared/data/nb201_accuracy.csv --cells 3000 --out results/bench-zc
"""

from __future__ import annotations

import argparse
import csv
import time
from pathlib import Path

import numpy as np
import torch

from nas.evaluators.zero_cost import synflow
from nas.io import read_tsv, write_figure, write_tsv
from nas.predictors import ranks, spearman
from nas.seeding import int_seed
from nas.spaces.nb201 import NB201Space

COLUMNS = ("CIFAR10TestAccuracy200Epochs", "CIFAR100TestAccuracy200Epochs", "ImageNetTestAccuracy200Epochs")
PROXIES = ("zc_synflow", "zc_params", "zc_flops")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table", required=True)
    parser.add_argument("--cells", type=int, default=3000, help="a fixed random sample of this many (0: all)")
    parser.add_argument("--seed", type=int, default=0, help="of the sample and of the networks' initialisation")
    parser.add_argument("--out", default="results/bench-zc")
    parser.add_argument("--summarise-only", action="store_true", help="read OUT/nb201_proxies.tsv, score nothing")
    args = parser.parse_args()
    if args.summarise_only:
        print(summarise(Path(args.out)))
        return
    torch.set_num_threads(1)
    with open(args.table, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    if args.cells:
        pick = np.random.default_rng(args.seed).choice(len(rows), size=args.cells, replace=False)
        rows = [rows[i] for i in sorted(pick)]
    space = NB201Space(channels=16, cells_per_stage=5)
    out, start = [], time.perf_counter()
    for i, row in enumerate(rows):
        genome = space.from_string(row["ArchitectureString"])
        cost = space.cost(genome, (3, 32, 32), 10)
        torch.manual_seed(int_seed(args.seed, i, "zc_nb201"))
        t = time.perf_counter()
        model = space.build(genome, (3, 32, 32), 10).train()
        value = synflow(model, (3, 32, 32))
        out.append({"arch": row["ArchitectureString"], "zc_synflow": value, "zc_params": cost["params"],
                    "zc_flops": cost["flops"], "seconds": round(time.perf_counter() - t, 4),
                    **{c: float(row[c]) for c in COLUMNS}})
        if (i + 1) % 500 == 0:
            print(f"{i + 1} cells, {time.perf_counter() - start:.0f} s", flush=True)
    seconds = time.perf_counter() - start
    folder = Path(args.out)
    write_tsv(folder / "nb201_proxies.tsv", tuple(out[0]), out)
    print(summarise(folder, f"(sample seed {args.seed}) in {seconds:.0f} s on one thread"))


def summarise(folder: Path, how: str = "") -> str:
    """summary.txt (each proxy's Spearman correlation with each column) and
    proxies.png (CIFAR-10 accuracy against each proxy's rank) from nb201_proxies.tsv."""
    rows = read_tsv(folder / "nb201_proxies.tsv")
    lines = [f"{len(rows)} cells{' ' + how if how else ''}; median {np.median([float(r['seconds']) for r in rows]):.3f} s a cell "
             "(build + synflow)"]
    for proxy in PROXIES:
        x = np.array([float(r[proxy]) for r in rows])
        lines.append(proxy + "  " + "  ".join(
            f"{c.removesuffix('TestAccuracy200Epochs')} {spearman(x, np.array([float(r[c]) for r in rows])):.3f}"
            for c in COLUMNS))
    (folder / "summary.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    accuracy = np.array([float(r[COLUMNS[0]]) for r in rows])
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.8), dpi=100, sharey=True)
    for ax, proxy in zip(axes, ("zc_synflow", "zc_params")):
        x = ranks(np.array([float(r[proxy]) for r in rows])) / (len(rows) - 1)
        ax.scatter(x, accuracy, s=2, alpha=0.3)
        ax.set_xlabel(f"rank of {proxy} (0 lowest, 1 highest)")
        ax.set_title(f"Spearman {spearman(x, accuracy):.3f}")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("CIFAR-10 test accuracy, %")
    axes[0].set_ylim(max(0.0, np.percentile(accuracy, 2) - 5), accuracy.max() + 1)
    fig.suptitle(f"{len(rows)} NAS-Bench-201 cells at initialisation (C=16, N=5)")
    fig.tight_layout()
    write_figure(folder / "proxies.png", fig)
    return "\n".join(lines)

if __name__ == "__main__":
    main()
