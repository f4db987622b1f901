"""How far a latency measured inside a search moves with the load, against the same
measurement on a quiet machine.

    python scripts/latency_spread.py results/pareto-nsga2 results/pareto-rea --repeats 5

A training job times its network after training (evaluator option `latency`)
while other trainings may share the CPU, and records the 1-minute load average
beside it (`latency_load`). This script builds each candidate of the runs again
(latency does not depend on the weights), times it `repeats` times with the
run's own latency settings, one process and nothing else running, and prints:

- the spread of the quiet repeats ((max - min) / median, the median over cells):
  the noise of the clock itself;
- the in-search value over the quiet median: its median, its 10th and 90th
  percentiles, overall and by the load it was measured under;
- the Spearman correlation of in-search and quiet latencies over the cells: how
  well the search's ranking of cells by latency survives the load; beside it
  that of two quiet repeats, the most any measurement could reach.
"""

from __future__ import annotations

import argparse
import statistics

import numpy as np
import torch

from nas import layout
from nas.config import load_run
from nas.evaluators.training import latency
from nas.io import read_tsv
from nas.spaces import make_space
from nas.tasks import task_for


def ranks(values: np.ndarray) -> np.ndarray:
    return np.argsort(np.argsort(values)).astype(float)


def quantiles(ratios: list[float]) -> str:
    q = np.quantile(ratios, [0.1, 0.5, 0.9])
    return f"{q[1]:.3f} (10-90 %: {q[0]:.3f}-{q[2]:.3f}, {len(ratios)} cells)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", help="run folders (results/NAME) trained with evaluator.latency")
    parser.add_argument("--repeats", type=int, default=5, help="quiet measurements per cell (at least 2)")
    parser.add_argument("--metric", default="latency_ms", choices=["latency_ms", "latency_batch_ms", "latency_cpu_ms"])
    args = parser.parse_args()
    cells: list[tuple[float, float, float, float, float, float]] = []
    # in-search, load, quiet median, quiet spread, the first and the second quiet repeat
    for rdir in args.runs:
        run = load_run(rdir)
        cfg = run["evaluator"].get("latency")
        if cfg is None:
            raise SystemExit(f"{rdir}: the run measured no latency (evaluator.latency is not set)")
        torch.set_num_threads(int(run["training"]["threads"]))  # as its training jobs had
        space = make_space(run["space"])
        info = task_for(run["task"]).describe()
        for row in read_tsv(layout.history(rdir)):
            if row.get(args.metric) in (None, ""):
                continue
            model = space.build(space.from_string(row["arch"]), info.input_shape, info.num_classes)
            quiet = [latency(model, info.input_shape, torch.device("cpu"), cfg)[args.metric]
                     for _ in range(args.repeats)]
            median = statistics.median(quiet)
            cells.append((float(row[args.metric]), float(row["latency_load"]), median,
                          (max(quiet) - min(quiet)) / median, quiet[0], quiet[-1]))
    if not cells:
        raise SystemExit(f"no candidate of {', '.join(args.runs)} has {args.metric}")
    data = np.array(cells)
    ratio = data[:, 0] / data[:, 2]
    print(f"{args.metric}: {len(cells)} cells, quiet latencies {data[:, 2].min():.3f}-{data[:, 2].max():.3f} ms")
    print(f"quiet repeats, (max - min) / median: median {np.median(data[:, 3]):.3f}, "
          f"90 % {np.quantile(data[:, 3], 0.9):.3f}")
    print(f"in-search / quiet: {quantiles(list(ratio))}")
    for low, high in ((0, 1.5), (1.5, 2.5), (2.5, float('inf'))):
        chosen = [r for r, load in zip(ratio, data[:, 1]) if low <= load < high]
        if chosen:
            print(f"  load {low:g}-{high:g}: {quantiles(chosen)}")
    rho = np.corrcoef(ranks(data[:, 0]), ranks(data[:, 2]))[0, 1]
    again = np.corrcoef(ranks(data[:, 4]), ranks(data[:, 5]))[0, 1]
    print(f"Spearman over cells: in-search vs quiet median {rho:.3f}; quiet repeat vs quiet repeat {again:.3f}")


if __name__ == "__main__":
    main()
