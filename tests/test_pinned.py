"""Pinned histories: what each strategy finds on the suite's own table, and one tiny
digits search with real training, byte for byte (less train_seconds).

The files in tests/pinned/ were written by the code before the evaluator, task,
objective and space interfaces (commit fd4b6b7) and must not change: a change
of results is never a side effect of a refactoring. To re-pin deliberately,
after a change that is meant to change results, run this file as a script
(`python -m tests.test_pinned`) and say why in the commit.
"""

from __future__ import annotations

import csv
import io
import sys
from pathlib import Path

import pytest

from nas.config import resolve_runs
from nas.io import tsv_text
from nas.runner import run_in_process
from nas.search import columns
from tests.helpers import OPS3, look_up, train, write_nb201_table

PINNED = Path(__file__).parent / "pinned"
STRATEGIES = {
    "random": {"name": "random"},
    "ga": {"name": "ga", "selection": "tournament", "crossover": "multi_point", "mutation": "bitflip"},
    "ga-roulette": {"name": "ga", "selection": "roulette", "crossover": "single_point", "mutation": "swap"},
    "rea": {"name": "rea", "sample_size": 2},
    "ls": {"name": "ls"},
    "ls-predictor": {"name": "ls", "guide": "predictor", "restart": "kick"},
    "reinforce-lstm": {"name": "reinforce"},
    "reinforce-mlp": {"name": "reinforce", "controller": "mlp"},
    "bananas": {"name": "bananas", "pool": 30},
}
DIGITS = {
    "seed": 3, "generations": 2, "population": 3, "candidates": 2,
    "space": {"name": "chain", "max_layers": 3, "filters": [4, 8]},
    "strategy": {"name": "reinforce", "formulation": "edit", "max_edits": 2},
    "task": {"name": "digits", "train_size": 60, "val_size": 60},
    "training": {"epochs": 2, "batch_size": 32},
}


def without_timing(tsv: str) -> str:
    rows = list(csv.reader(io.StringIO(tsv), delimiter="\t"))
    drop = rows[0].index("train_seconds")
    return "".join("\t".join(c for i, c in enumerate(r) if i != drop) + "\n" for r in rows)


def table_runs(table: Path) -> dict[str, dict]:
    defaults = {"generations": 4, "population": 6, "candidates": 4, "space": {"name": "nb201", "ops": OPS3},
                "evaluator": {"name": "table", "path": str(table), "arch_column": "arch", "val_column": "val",
                              "test_column": "test"}}
    return resolve_runs({"defaults": defaults, "runs": {name: {"strategy": s} for name, s in STRATEGIES.items()}})


def history(run: dict, evaluate) -> str:
    return without_timing(tsv_text(columns(run), run_in_process(run, evaluate)))


def digits_history() -> str:
    run = resolve_runs({"runs": {"digits": DIGITS}})["digits"]
    return history(run, lambda spec: train(spec).metrics)


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, dict]:
    return table_runs(write_nb201_table(tmp_path_factory.mktemp("pinned") / "table.csv"))


@pytest.mark.parametrize("name", list(STRATEGIES))
def test_every_strategy_finds_what_it_found_before(runs, name):
    assert history(runs[name], look_up) == (PINNED / f"table-{name}.tsv").read_text()


def test_a_tiny_digits_search_trains_as_before():
    assert digits_history() == (PINNED / "digits-reinforce-edit.tsv").read_text()


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        for name, run in table_runs(write_nb201_table(Path(tmp) / "table.csv")).items():
            (PINNED / f"table-{name}.tsv").write_text(history(run, look_up))
    (PINNED / "digits-reinforce-edit.tsv").write_text(digits_history())
    print(f"re-pinned {len(STRATEGIES) + 1} histories in {PINNED}", file=sys.stderr)
