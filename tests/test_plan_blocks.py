"""A long run planned in blocks of generations (nas/blocks.py, rules/common.smk):
the arithmetic, when a block's first generation may read its state undeclared,
and a real snakemake over a run of four blocks: its plan, a kill where a
block starts, a changed setting, each giving the search of one plan."""

from __future__ import annotations

import os
import re
from pathlib import Path

import yaml

from nas import layout
from nas.blocks import block_ends, block_length, starts_block, state_settled
from nas.config import resolve_runs
from nas.io import tsv_text
from nas.runner import run_in_process
from nas.search import columns
from tests.helpers import kill_when, look_up, snakemake, table_run


def test_a_block_holds_whole_generations_of_about_the_planned_candidates():
    assert block_length({"population": 50, "candidates": 50}, 2000) == 40
    # Generation 0's population counts where it is the larger.
    assert block_length({"population": 100, "candidates": 10}, 2000) == 20
    assert block_length({"population": 8, "candidates": 8}, 5) == 1


def test_block_ends_and_starts_cut_the_run_into_consecutive_blocks():
    assert block_ends(6, 2) == [1, 3]
    assert block_ends(7, 2) == [1, 3, 5]
    # A run of one block (or shorter) has no checkpoint at all.
    assert block_ends(40, 40) == [] and block_ends(3, 40) == []
    for generations, length in [(1, 1), (5, 1), (9, 4), (12, 4), (100, 7)]:
        starts = [g for g in range(generations) if starts_block(g, length)]
        assert starts == [end + 1 for end in block_ends(generations, length)]
        assert 0 not in starts


def test_a_state_is_read_undeclared_only_when_settled(tmp_path):
    state, settings, table = tmp_path / "state", tmp_path / "run.yaml", tmp_path / "table.csv"
    settings.write_text("seed: 0\n")
    table.write_text("arch,val\n")
    assert not state_settled(state, settings, "seed: 0\n", [str(table)])  # missing
    state.mkdir()
    os.utime(settings, (1000, 1000))
    os.utime(table, (1000, 1000))
    os.utime(state, (2000, 2000))
    assert state_settled(state, settings, "seed: 0\n", [str(table)])
    # The config now says otherwise: run.yaml is about to be written again.
    assert not state_settled(state, settings, "seed: 1\n", [str(table)])
    # A table (or run.yaml) newer than the state: the evaluations run again.
    os.utime(table, (3000, 3000))
    assert not state_settled(state, settings, "seed: 0\n", [str(table)])
    assert not state_settled(state, settings, "seed: 0\n", [str(tmp_path / "gone.csv")])


def _write(path: Path, run: dict, plan_candidates: int) -> None:
    path.write_text(yaml.safe_dump({"runs": {"r": run}, "execution": {"plan_candidates": plan_candidates}}))


def _expected(run: dict) -> str:
    resolved = resolve_runs({"runs": {"r": run}})["r"]
    return tsv_text(columns(resolved), run_in_process(resolved, look_up))


def test_a_run_in_four_blocks_is_the_search_of_one_plan(tmp_path, nb201_table):
    """Population 6 and 4 candidates, 6 planned at once: a block a generation,
    checkpoints after generations 0, 1 and 2."""
    run = table_run(nb201_table, generations=4)
    _write(tmp_path / "config.yaml", run, 6)
    rdir = tmp_path / layout.run_dir("r")

    plan = snakemake(tmp_path, "--configfile", "config.yaml", "-n").stdout
    counts = dict(re.findall(r"^(\w+)\s+(\d+)$", plan, re.M))
    assert counts["propose"] == "1" and counts["aggregate"] == "1" and counts["end_of_block"] == "1"

    # Killed as the third block's generation proposes (it reads the state
    # before it undeclared), then resumed.
    log = tmp_path / layout.log(layout.run_dir("r"), "propose", 2)
    kill_when(tmp_path, log, "--configfile", "config.yaml")
    assert log.exists() and not (tmp_path / layout.candidates_dir(layout.run_dir("r"), 3)).exists()
    snakemake(tmp_path, "--configfile", "config.yaml", "--unlock")
    snakemake(tmp_path, "--configfile", "config.yaml")
    assert (rdir / "history.tsv").read_text() == _expected(run)
    assert sorted(p.parent.name for p in rdir.glob("gen_*/end_of_block.yaml")) == ["gen_000", "gen_001", "gen_002"]

    # A changed setting: every block again, each after the one before.
    run["strategy"] = {"name": "rea", "sample_size": 3}
    _write(tmp_path / "config.yaml", run, 6)
    snakemake(tmp_path, "--configfile", "config.yaml")
    assert (rdir / "history.tsv").read_text() == _expected(run)
    # ...and then stays done: a block's first generation declares the same inputs whatever it waited on.
    assert "Nothing to be done" in snakemake(tmp_path, "--configfile", "config.yaml", "-n").stdout
