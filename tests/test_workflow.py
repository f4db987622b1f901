"""The real snakemake on tiny configs that use the table evaluator (no torch)."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pytest
import yaml

from nas import layout
from nas.config import resolve_runs
from nas.io import tsv_text
from nas.runner import run_in_process
from nas.search import columns
from tests.helpers import look_up, snakemake, table_run, write_config, write_nb201_table


def read_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f, delimiter="\t"))


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """Two runs side by side, finished once for the tests below."""
    work = tmp_path_factory.mktemp("wf")
    table = write_nb201_table(work / "table.csv")
    runs = {"rea": table_run(table), "ga": table_run(table, strategy={"name": "ga", "selection": "roulette"})}
    config = write_config(work / "config.yaml", runs)
    proc = snakemake(work, "--configfile", str(config))
    return work, config, runs, proc


def test_every_artefact_is_written(finished):
    work, config, runs, _ = finished
    resolved = resolve_runs(yaml.safe_load(config.read_text()))
    for name in runs:
        rdir = work / layout.run_dir(name)
        assert yaml.safe_load((rdir / "run.yaml").read_text())["name"] == name
        for g, n in enumerate([6, 4, 4]):
            specs = sorted((rdir / layout.candidates_dir("", g).lstrip("/")).glob("c*.yaml"))
            assert len(specs) == n
            spec = yaml.safe_load(specs[0].read_text())
            assert {"arch", "genome", "seed", "parents", "origin", "training", "task", "space"} <= set(spec)
            assert len(read_rows(rdir / f"gen_{g:03d}" / "table.tsv")) == n
            assert (rdir / f"gen_{g:03d}" / "state" / "state.json").is_file()
        history = read_rows(rdir / "history.tsv")
        assert len(history) == 14 and list(history[0]) == list(columns(resolved[name]))
        assert (rdir / "progress.png").read_bytes()[:4] == b"\x89PNG"
        assert list((rdir / "logs").glob("evaluate_gen_000.log")) and list((rdir / "benchmarks").glob("*.tsv"))


def test_summary_and_best_agree_with_history(finished):
    work, _, runs, _ = finished
    for name in runs:
        rdir = work / "results" / name
        history = read_rows(rdir / "history.tsv")
        summary = yaml.safe_load((rdir / "summary.json").read_text())
        best = max(history, key=lambda r: float(r["val_acc"]))
        assert summary["best"]["val_acc"] == float(best["val_acc"])
        assert summary["evaluations"] == 14 and summary["status"] == {"ok": 14}
        assert summary["objective"] == {"metric": "val_acc", "direction": "max"}
        assert summary["spread"]["max"] - summary["spread"]["min"] > 0
        curve = summary["best_by_generation"]
        assert curve == sorted(curve) and curve[-1] == summary["best"]["val_acc"]
        best_spec = yaml.safe_load((rdir / "best.yaml").read_text())
        assert best_spec["arch"] == summary["best"]["arch"] == best["arch"]
        assert best_spec["metrics"]["val_acc"] == float(best["val_acc"])


def test_workflow_equals_the_in_process_search(finished):
    """One implementation: the files equal what the same code computes in memory."""
    work, config, _, _ = finished
    runs = resolve_runs(yaml.safe_load(config.read_text()))
    for name, run in runs.items():
        rows = run_in_process(run, look_up)
        assert (work / "results" / name / "history.tsv").read_text() == tsv_text(columns(run), rows)
        # The run's own evaluator, by default, is the same look-up.
        assert run_in_process(run) == rows


def test_nothing_reruns_when_everything_is_done(finished):
    work, config, _, _ = finished
    proc = snakemake(work, "--configfile", str(config), "-n")
    assert "Nothing to be done" in proc.stdout + proc.stderr


def test_extending_generations_runs_only_the_new_ones(tmp_path, nb201_table):
    config = write_config(tmp_path / "c.yaml", {"r": table_run(nb201_table, generations=2)})
    snakemake(tmp_path, "--configfile", str(config))
    first = (tmp_path / "results/r/gen_001/table.tsv").stat().st_mtime_ns
    config = write_config(tmp_path / "c.yaml", {"r": table_run(nb201_table, generations=4)})
    plan = snakemake(tmp_path, "--configfile", str(config), "-n").stdout
    counts = dict(re.findall(r"^(\w+)\s+(\d+)$", plan, re.M))
    # A table's look-ups: one job per generation (of 4 candidates), no per-candidate train jobs.
    assert counts["propose"] == "2" and counts["evaluate_later_4"] == "2" and counts["aggregate"] == "2"
    assert "train" not in counts
    assert "run_settings" not in counts
    snakemake(tmp_path, "--configfile", str(config))
    assert (tmp_path / "results/r/gen_001/table.tsv").stat().st_mtime_ns == first
    assert len(read_rows(tmp_path / "results/r/history.tsv")) == 6 + 3 * 4


def test_changing_what_defines_a_run_reruns_it(tmp_path, nb201_table):
    config = write_config(tmp_path / "c.yaml", {"r": table_run(nb201_table, generations=1)})
    snakemake(tmp_path, "--configfile", str(config))
    config = write_config(tmp_path / "c.yaml", {"r": table_run(nb201_table, generations=1, seed=5)})
    plan = snakemake(tmp_path, "--configfile", str(config), "-n").stdout
    assert re.search(r"^run_settings\s+1$", plan, re.M) and re.search(r"^evaluate_first_6\s+1$", plan, re.M)


def test_dry_run_plans_every_generation(tmp_path, nb201_table):
    config = write_config(tmp_path / "c.yaml", {"long": table_run(nb201_table, generations=200, candidates=5)})
    plan = snakemake(tmp_path, "--configfile", str(config), "-n", timeout=120).stdout
    counts = dict(re.findall(r"^(\w+)\s+(\d+)$", plan, re.M))
    assert counts["propose"] == "200" and counts["aggregate"] == "200"
    assert counts["evaluate_first_6"] == "1" and counts["evaluate_later_5"] == "199"


@pytest.mark.parametrize(
    "override, words",
    [
        ({"strategy": {"name": "nope"}}, ["runs.bad.strategy.name", "'nope'", "choose one of: bananas, ga, "]),
        ({"population": 1}, ["runs.bad.population", ">= 2"]),
        ({"strategy": {"name": "ga", "crossover_rate": 2}}, ["runs.bad.strategy.crossover_rate", "<= 1"]),
        ({"space": {"name": "nb201", "ops": ["conv_9x9"]}}, ["runs.bad.space.ops.0"]),
        ({"task": {"name": "svhn", "root": "/no/data"}, "evaluator": {"name": "train"}}, ["runs.bad.task", "/no/data"]),
    ],
)
def test_bad_config_is_refused_before_any_job(tmp_path, nb201_table, override, words):
    config = write_config(tmp_path / "c.yaml", {"good": table_run(nb201_table), "bad": table_run(nb201_table, **override)})
    proc = snakemake(tmp_path, "--configfile", str(config), check=False)
    assert proc.returncode != 0
    for word in words:
        assert word in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "results").exists()


def test_run_name_escaping_results_is_refused(tmp_path, nb201_table):
    config = write_config(tmp_path / "c.yaml", {"../evil": table_run(nb201_table)})
    proc = snakemake(tmp_path, "--configfile", str(config), check=False)
    assert proc.returncode != 0 and "run name '../evil' is not allowed" in proc.stderr
    assert not (tmp_path / "results").exists() and not (tmp_path.parent / "evil").exists()
