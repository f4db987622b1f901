"""Meta-learning end to end: leave-one-column-out bench, the meta rules of the workflow."""

from __future__ import annotations

import csv
import json

import yaml

from nas.bench import run_bench
from nas.io import read_tsv
from tests.helpers import OPS3, nas_cli, snakemake, write_config
from tests.test_meta import three_column_table


def bench_config(tmp_path):
    config = {
        "defaults": {"space": {"name": "nb201", "ops": OPS3}},
        "runs": {"random": {"population": 5, "candidates": 5, "strategy": {"name": "random"}},
                 "rea": {"population": 10, "candidates": 5, "strategy": {"name": "rea", "sample_size": 3}}},
        "warm_start": {"top": 5},
        "meta_screen": {"by": "meta", "keep": 1 / 3},
    }
    path = tmp_path / "bench.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_bench_with_meta_strategies_leaves_the_target_out(tmp_path):
    table = three_column_table(tmp_path / "t.csv", noise=(1.0, 1.0, 1.0))
    out = tmp_path / "out"
    features = {"a": {"f": 0.0}, "b": {"f": 1.0}, "c": {"f": 0.5}}
    summary = run_bench(str(table), "c", ["random", "rea", "random+meta", "rea+meta"], seeds=5, budget=30, out=out,
                        arch_column="arch", jobs=1, config_path=bench_config(tmp_path), meta_from=["a", "b"],
                        task_features=features)
    at = {(r["strategy"], r["budget"]): r["regret"] for r in summary}
    assert at[("rea+meta", 10)] < at[("rea", 10)] and at[("rea+meta", 30)] <= at[("rea", 30)]
    assert at[("random+meta", 10)] < at[("random", 10)]
    tasks = json.loads((out / "meta" / "tasks.json").read_text())
    assert sorted(tasks) == ["table:t.csv:a", "table:t.csv:b"]  # never the target column
    with open(out / "summary.tsv", newline="") as f:
        assert {r["strategy"] for r in csv.DictReader(f, delimiter="\t")} == {"random", "rea", "random+meta", "rea+meta"}
    bad = nas_cli("bench", "--table", str(table), "--metric", "c", "--arch-column", "arch", "--strategies", "rea+meta",
                  "--seeds", "1", "--budget", "10", "--out", str(tmp_path / "o"), "--config", str(bench_config(tmp_path)),
                  cwd=tmp_path, check=False)
    assert bad.returncode == 2 and "need the knowledge of other columns (--meta-from)" in bad.stderr


def test_workflow_builds_the_meta_model_and_warm_starts_a_run(tmp_path):
    table = three_column_table(tmp_path / "t.csv")
    evaluator = {"name": "table", "path": str(table), "arch_column": "arch"}
    run = {"generations": 1, "population": 5, "candidates": 3, "space": {"name": "nb201", "ops": OPS3},
           "strategy": {"name": "rea", "sample_size": 2}}
    config = write_config(tmp_path / "config.yaml", {
        "cold-a": {**run, "evaluator": {**evaluator, "val_column": "a"}, "task": {"features": {"f": 0.0}}},
        "warm-c": {**run, "evaluator": {**evaluator, "val_column": "c"}, "task": {"features": {"f": 0.2}},
                   "warm_start": {"model": "results/meta", "top": 4}},
    })
    text = yaml.safe_load(config.read_text())
    text["meta"] = {"tables": [{"path": str(table), "arch_column": "arch", "columns": {"b": {"f": 1.0}}}]}
    config.write_text(yaml.safe_dump(text))
    # One call: propose of the warm run declares the model, which needs the cold run.
    snakemake(tmp_path, "--configfile", str(config))
    tasks = json.loads((tmp_path / "results/meta/tasks.json").read_text())
    assert tasks == {"table:t.csv:a": {"f": 0.0}, "table:t.csv:b": {"f": 1.0}}
    assert json.loads((tmp_path / "results/cold-a/task.json").read_text())["task"] == "table:t.csv:a"
    rows = read_tsv(tmp_path / "results/warm-c/history.tsv")
    assert [r["origin"] for r in rows[:4]] == ["meta"] * 4
    ranked = nas_cli("meta", "rank", str(tmp_path / "results/meta"), "--features", "{f: 0.2}", "--top", "4",
                     cwd=tmp_path).stdout
    assert [line.split("\t")[-1] for line in ranked.splitlines() if not line.startswith("#")] == \
        [r["arch"] for r in rows[:4]]
