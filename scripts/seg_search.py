"""The runs of a config against each other over several seeds, in process.

    python scripts/seg_search.py                                    # config/examples/segmentation.yaml, 3 seeds
    python scripts/seg_search.py --seeds 3 --workers 2 --out /tmp/search.tsv

Each run of the config (rea and random in the example: the same task, space,
recipe and number of trainings) is searched with seeds 0..seeds-1 through
`run_in_process`, the train evaluator's real trainings (what the workflow
computes, without its files), `workers` searches at a time, one thread each.
Prints per search its best value of the primary objective, after how many
trainings it was found, and that candidate's test value; then per run the
mean +- std over seeds. Writes the table as TSV (--out).
"""

from __future__ import annotations

import argparse
import copy
import multiprocessing
from typing import Any

import numpy as np

from nas.config import load_config, resolve_runs
from nas.io import write_tsv
from nas.objectives import best_row, objectives_of
from nas.runner import run_in_process

COLUMNS = ("run", "seed", "best", "found_at", "test", "arch", "trainings")


def _search(task: tuple[str, int, dict[str, Any]]) -> dict[str, Any]:
    name, seed, run = task
    rows = run_in_process(run)
    objectives = objectives_of(run)
    metric = objectives[0]["metric"]
    best = best_row(rows, objectives)
    test = metric.replace("val_", "test_", 1)
    return {"run": name, "seed": seed, "best": float(best[metric]), "found_at": rows.index(best) + 1,
            "test": float(best[test]) if test in best else float("nan"), "arch": best["arch"], "trainings": len(rows)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="config/examples/segmentation.yaml")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()

    config = load_config(args.config)
    tasks = []
    for seed in range(args.seeds):
        seeded = copy.deepcopy(config)
        seeded["defaults"] = {**(seeded.get("defaults") or {}), "seed": seed}
        tasks += [(name, seed, run) for name, run in resolve_runs(seeded).items()]
    with multiprocessing.get_context("fork").Pool(args.workers) as pool:
        rows = pool.map(_search, tasks, chunksize=1)
    if args.out:
        write_tsv(args.out, COLUMNS, rows)
    for r in rows:
        print(f"{r['run']:>10} seed {r['seed']}: best {r['best']:.2f} after {r['found_at']} of {r['trainings']} "
              f"trainings, test {r['test']:.2f}  {r['arch']}")
    for name in dict.fromkeys(r["run"] for r in rows):
        best = np.array([r["best"] for r in rows if r["run"] == name])
        test = np.array([r["test"] for r in rows if r["run"] == name])
        print(f"{name:>10}: best {best.mean():.2f} +- {best.std(ddof=1) if len(best) > 1 else 0:.2f}, "
              f"its test {test.mean():.2f} +- {test.std(ddof=1) if len(test) > 1 else 0:.2f} ({len(best)} seeds)")


if __name__ == "__main__":
    main()
