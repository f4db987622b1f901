"""REINFORCE as controller epochs of the real workflow."""

from __future__ import annotations

import yaml

from nas.config import resolve_runs
from nas.io import tsv_text
from nas.runner import run_in_process
from nas.search import columns
from tests.helpers import look_up, snakemake, table_run, write_config


def test_policy_files_reloaded_each_epoch_give_the_in_process_search(tmp_path, nb201_table):
    """Every controller epoch reloads policy and optimizer from files (as after a
    stop); the result equals a search that kept them in memory throughout."""
    runs = {
        "lstm": table_run(nb201_table, generations=3, strategy={"name": "reinforce", "controller": "lstm"}),
        "mlp": table_run(nb201_table, generations=3, strategy={"name": "reinforce", "controller": "mlp"}),
    }
    config = write_config(tmp_path / "c.yaml", runs)
    snakemake(tmp_path, "--configfile", str(config))
    resolved = resolve_runs(yaml.safe_load(config.read_text()))
    for name, run in resolved.items():
        rdir = tmp_path / "results" / name
        assert (rdir / "gen_002" / "state" / "policy.pt").is_file()
        assert (rdir / "history.tsv").read_text() == tsv_text(columns(run), run_in_process(run, look_up))


def test_reinforce_trains_on_digits_in_the_workflow(tmp_path):
    """Both formulations side by side in one snakemake call."""

    def run(formulation: str, space: dict) -> dict:
        return {
            "generations": 2,
            "population": 2,
            "candidates": 2,
            "space": space,
            "strategy": {"name": "reinforce", "formulation": formulation},
            "task": {"name": "digits", "train_size": 60, "val_size": 60},
            "training": {"epochs": 1, "batch_size": 32},
        }

    runs = {
        "generate": run("generate", {"name": "nb201", "channels": 4, "cells_per_stage": 1}),
        "edit": run("edit", {"name": "chain", "max_layers": 3, "filters": [4, 8], "kernels": [1, 3]}),
    }
    config = write_config(tmp_path / "c.yaml", runs)
    snakemake(tmp_path, "--configfile", str(config))
    for name in runs:
        rdir = tmp_path / "results" / name
        history = (rdir / "history.tsv").read_text().splitlines()
        assert len(history) == 1 + 4 and all("\tok\t" in line for line in history[1:])
        assert (rdir / "gen_001" / "state" / "policy.pt").is_file()
    spec = yaml.safe_load((tmp_path / "results" / "edit" / "gen_001" / "candidates" / "c00.yaml").read_text())
    assert spec["trace"] and spec["origin"] in ("edit", "random")
