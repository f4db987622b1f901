"""Zero-cost proxies against real training on the embedded digits.

The same random cells of the default search (config/config.yaml: its space,
task and recipe) are trained (`training.repeats` seeds each, their mean) and
scored by every proxy of the proxy evaluator, in this process; prints each
proxy's Spearman correlation with the trained val_acc and the median seconds
a cell costs to build and score, and writes one row per cell.

    python scripts/zc_digits.py --cells 64 --repeats 2 --out results/zc-digits
"""

from __future__ import annotations

import argparse
import copy
import time
from pathlib import Path

import numpy as np
import yaml

from nas.config import resolve_runs
from nas.evaluators.proxy import PROXIES, proxy_metric
from nas.io import write_tsv
from nas.predictors import spearman
from nas.runner import run_in_process

REPO = Path(__file__).resolve().parents[1]


def runs(cells: int, repeats: int, seed: int) -> dict[str, dict]:
    """The default search's settings, one generation of `cells` random cells: trained, then
    scored by each proxy alone (its seconds are then its own) and by all of them at once."""
    base = copy.deepcopy(yaml.safe_load((REPO / "config" / "config.yaml").read_text())["defaults"])
    base.pop("final", None)
    base.update(seed=seed, generations=1, population=cells, strategy={"name": "random"})
    made = {"trained": {"training": {**base["training"], "repeats": repeats}}}
    for proxy in PROXIES:
        made[proxy] = {"evaluator": {"name": "proxy", "proxies": [proxy]}}
    return resolve_runs({"defaults": base, "runs": made})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=2, help="trainings of each cell (their mean is the truth)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="results/zc-digits")
    args = parser.parse_args()
    made = runs(args.cells, args.repeats, args.seed)
    start = time.perf_counter()
    trained = run_in_process(made["trained"])
    train_seconds = time.perf_counter() - start
    rows = [{"arch": r["arch"], "val_acc": r["val_acc"], "val_acc_std": r.get("val_acc_std")} for r in trained]
    lines = [f"{len(rows)} random cells, {args.repeats} trainings each: {train_seconds:.0f} s; "
             f"val_acc {min(r['val_acc'] for r in rows):.2f}-{max(r['val_acc'] for r in rows):.2f}"]
    truth = np.array([r["val_acc"] for r in rows])
    for proxy in PROXIES:
        scored = run_in_process(made[proxy])
        assert [s["arch"] for s in scored] == [r["arch"] for r in rows], "the runs must draw the same cells"
        metric = proxy_metric(proxy)
        for row, s in zip(rows, scored):
            row[metric] = s[metric]
            row[f"{proxy}_seconds"] = s["train_seconds"]
        values = np.array([np.nan if r[metric] is None else r[metric] for r in rows], dtype=float)
        ok = np.isfinite(values)
        lines.append(f"{metric:14} spearman {spearman(values[ok], truth[ok]):+.3f} over {int(ok.sum())} cells; "
                     f"median {np.median([r[f'{proxy}_seconds'] for r in rows]):.4f} s a cell")
    folder = Path(args.out)
    write_tsv(folder / "proxies.tsv", tuple(rows[0]), rows)
    (folder / "summary.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
