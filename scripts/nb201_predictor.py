"""The meta-model's predictor alone on NAS-Bench-201, each column the target in turn.

    python scripts/nb201_predictor.py                          # the figures of docs/meta.md
    python scripts/nb201_predictor.py --table PATH --sample 200

For each column as target, fits the predictor (nas/meta/model.py, its
encoding, weighting and ridge cross-validated as in `meta build`) on the other
columns (all cells, and `--sample` random cells per column), predicts every
cell, and prints the regret of its top 10 and top 30 cells on the target and
the Spearman correlation of prediction and target over all cells.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import yaml

from nas.evaluators.table import load_table
from nas.meta.knowledge import from_table
from nas.meta.model import MetaModel
from nas.predictors import spearman

REPO = Path(__file__).resolve().parents[1]

ARCH_COLUMN = "ArchitectureString"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--table", default=str(REPO.parent / "shared" / "data" / "nb201_accuracy.csv"))
    parser.add_argument("--task-features", type=Path, default=REPO / "config" / "nb201_tasks.yaml")
    parser.add_argument("--sample", type=int, default=200, help="cells per known column in the sparse fit")
    args = parser.parse_args()

    features = yaml.safe_load(args.task_features.read_text())
    print("target\tknowledge\tencoding\tweighting\tridge\tregret top 10\tregret top 30\tspearman")
    for target in features:
        table = load_table(args.table, ARCH_COLUMN, target, target)
        archs = list(table.val)
        truth = np.array([table.val[a] for a in archs])
        for label, sample in (("all cells", None), (f"{args.sample} cells", args.sample)):
            knowledge = from_table(args.table, ARCH_COLUMN, {c: features[c] for c in features if c != target})
            if sample:
                rng = np.random.default_rng(0)
                for task, values in knowledge.values.items():
                    keep = rng.choice(sorted(values), sample, replace=False)
                    knowledge.values[task] = {a: values[a] for a in keep}
            model = MetaModel.build(knowledge, {"name": "nb201"})
            order = np.argsort(-model.predict(features[target], archs), kind="stable")
            regret = [truth.max() - truth[order[:k]].max() for k in (10, 30)]
            print(f"{target}\t{label}\t{'+'.join(model.encoding)}\t{model.weighting}\t{model.ridge:g}\t"
                  f"{regret[0]:.3f}\t{regret[1]:.3f}\t{spearman(model.predict(features[target], archs), truth):.2f}")


if __name__ == "__main__":
    main()
