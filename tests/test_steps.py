"""Each workflow step run by hand through `python -m nas`, as a user would."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import yaml

from nas import layout
from nas.config import frozen, resolve_runs
from nas.io import ArtefactError, read_json, read_tsv, write_yaml
from nas.objectives import best_row, best_so_far
from nas.report import spread
from nas.runner import run_in_process
from nas.steps import aggregate, propose
from tests.helpers import OPS3, look_up, nas_cli, synthetic_score, table_run

MAX_VAL_ACC = [{"metric": "val_acc", "direction": "max"}]


def make_run_dir(tmp_path, nb201_table, **overrides):
    run = resolve_runs({"runs": {"r": table_run(nb201_table, **overrides)}})["r"]
    rdir = tmp_path / "results" / "r"
    write_yaml(layout.run_config(rdir), frozen(run))
    return run, rdir


def test_steps_by_hand(tmp_path, nb201_table):
    run, rdir = make_run_dir(tmp_path, nb201_table, generations=2)
    for g in range(2):
        nas_cli("propose", str(rdir), "--generation", str(g), cwd=tmp_path)
        specs = sorted((tmp_path / layout.candidates_dir(rdir, g)).glob("c*.yaml"))
        assert len(specs) == (6 if g == 0 else 4)
        if g == 0:  # one candidate at a time
            for spec in specs:
                nas_cli("train", str(spec), "--out", str(tmp_path / layout.eval_dir(rdir, g, spec.stem)), cwd=tmp_path)
        else:  # the whole generation in one job, as the workflow does for a table
            nas_cli("evaluate", str(rdir), "--generation", str(g), cwd=tmp_path)
        for spec in specs:
            assert read_json(tmp_path / layout.metrics(rdir, g, spec.stem))["status"] == "ok"
        nas_cli("aggregate", str(rdir), "--generation", str(g), cwd=tmp_path)
    proc = nas_cli("report", str(rdir), "--generations", "2", cwd=tmp_path)
    summary = json.loads(proc.stdout)
    assert summary["evaluations"] == 10
    assert len(read_tsv(layout.history(rdir))) == 10


def test_rerunning_a_step_gives_identical_bytes(tmp_path, nb201_table):
    _, rdir = make_run_dir(tmp_path, nb201_table)
    propose(rdir, 0)
    first = {p.name: p.read_bytes() for p in (tmp_path / layout.candidates_dir(rdir, 0)).glob("*.yaml")}
    propose(rdir, 0)
    again = {p.name: p.read_bytes() for p in (tmp_path / layout.candidates_dir(rdir, 0)).glob("*.yaml")}
    assert first == again and len(first) == 6


def test_spec_is_self_contained_and_retrains_alone(tmp_path, nb201_table):
    _, rdir = make_run_dir(tmp_path, nb201_table)
    specs = propose(rdir, 0)
    spec = yaml.safe_load(open(layout.spec(rdir, 0, 0)))
    assert spec == specs[0]
    assert {"space", "task", "training", "evaluator", "seed", "run_seed"} <= set(spec)
    nas_cli("train", layout.spec(rdir, 0, 0), "--out", str(tmp_path / "alone"), cwd=tmp_path)

    ops = [part.split("~")[0] for part in spec["arch"].strip("|").replace("+", "").split("|") if part]
    assert all(op in OPS3 for op in ops)
    assert read_json(tmp_path / "alone" / "metrics.json")["val_acc"] == round(synthetic_score(ops), 3)


def test_corrupt_metrics_are_reported_by_name(tmp_path, nb201_table):
    _, rdir = make_run_dir(tmp_path, nb201_table)
    propose(rdir, 0)
    for c in range(6):
        nas_cli("train", layout.spec(rdir, 0, c), "--out", layout.eval_dir(rdir, 0, c), cwd=tmp_path)
    broken = layout.metrics(rdir, 0, 3)
    text = open(broken).read()
    open(broken, "w").write(text[: len(text) // 2])
    proc = nas_cli("aggregate", str(rdir), "--generation", "0", cwd=tmp_path, check=False)
    assert proc.returncode == 2
    assert "c03/metrics.json: truncated or not valid JSON" in proc.stderr
    assert "run snakemake again to re-make it" in proc.stderr
    assert not (tmp_path / layout.table(rdir, 0)).exists()
    # Moved aside, not deleted, and never to be read again.
    assert not Path(broken).exists() and Path(f"{broken}.corrupt").read_text() == text[: len(text) // 2]


def test_missing_previous_state_is_named(tmp_path, nb201_table):
    _, rdir = make_run_dir(tmp_path, nb201_table)
    with pytest.raises(ArtefactError, match="gen_000/state/state.json: file not found"):
        propose(rdir, 1)


def test_aggregate_before_training_names_the_missing_metrics(tmp_path, nb201_table):
    _, rdir = make_run_dir(tmp_path, nb201_table)
    propose(rdir, 0)
    with pytest.raises(ArtefactError, match="c00/metrics.json: file not found"):
        aggregate(rdir, 0)


def test_failed_candidates_get_worst_fitness_and_the_search_goes_on(nb201_table):
    run = resolve_runs({"runs": {"r": table_run(nb201_table, generations=4, strategy={"name": "ga"})}})["r"]

    def sometimes_diverges(spec):
        metrics = look_up(spec)
        if spec["arch"].count("nor_conv_3x3") >= 3:  # the best cells all blow up
            metrics.update(status="diverged", val_acc=math.nan, test_acc=math.nan)
        return metrics

    rows = run_in_process(run, sometimes_diverges)
    assert len(rows) == 6 + 3 * 4
    statuses = {r["status"] for r in rows}
    assert statuses == {"ok", "diverged"}
    best = best_row(rows, run["objectives"])
    assert best["status"] == "ok" and best["arch"].count("nor_conv_3x3") < 3
    assert all(r["val_acc"] is None for r in rows if r["status"] == "diverged")


def test_best_so_far_and_spread():
    rows = [{"status": "diverged", "val_acc": None}, {"status": "ok", "val_acc": 3.0}, {"status": "ok", "val_acc": 1.0}]
    curve = best_so_far(rows, MAX_VAL_ACC)
    assert math.isnan(curve[0]) and curve[1:] == [3.0, 3.0]
    assert best_row(rows, MAX_VAL_ACC) is rows[1]
    assert best_row(rows[:1], MAX_VAL_ACC) is None
    s = spread([1.0, 2.0, 3.0, 4.0, math.nan])
    assert s["count"] == 4 and s["min"] == 1 and s["max"] == 4 and s["median"] == 2.5


def test_cli_reports_bad_config_without_traceback(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("runs:\n  r:\n    population: 1\n")
    proc = nas_cli("check", str(config), cwd=tmp_path, check=False)
    assert proc.returncode == 2 and "runs.r.population: must be >= 2" in proc.stderr and "Traceback" not in proc.stderr
