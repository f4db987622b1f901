"""Malformed configs are refused before any job runs, and the message names the key.

One table of broken configs, each checked through nas.config (what the
Snakefile and `python -m nas check` call); a few also through a real
`snakemake -n`, which must fail without creating results/.
"""

from __future__ import annotations

import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import yaml

from nas.config import ConfigError, load_config, resolve_runs
from tests.helpers import snakemake, table_run

TABLE = "<table>"  # replaced by the path of a real benchmark table


def table(**evaluator: Any) -> dict[str, Any]:
    """A table-evaluated run whose evaluator section is exactly `evaluator`."""
    return {**table_run(Path(TABLE)), "evaluator": evaluator}


def run(**settings: Any) -> dict[str, Any]:
    return {"runs": {"bad": settings}}


# (id, config as a mapping or as YAML text, words the message must contain)
REFUSED: list[tuple[str, Any, list[str]]] = [
    # what a config is made of
    ("yaml-does-not-parse", "runs:\n  bad:\n    seed: 1\n   population: 2\n", ["not valid YAML", "line 4"]),
    ("yaml-unclosed-flow", "runs: {bad: {seed: 1}\n", ["not valid YAML", "line"]),
    ("top-level-is-a-list", "- bad\n- good\n", ["expected a mapping with `runs:`"]),
    ("top-level-unknown-key", {"run": {"bad": {}}, "runs": {"ok": {}}}, ["config key run:", "unknown key", "allowed keys here: defaults, execution"]),
    ("runs-is-a-list", {"runs": ["bad"]}, ["config key runs:", "expected object"]),
    ("runs-is-null", "runs:\n", ["config key runs:", "expected object, got None"]),
    ("runs-is-empty", {"runs": {}}, ["config key runs:", "at least one run"]),
    ("run-is-a-list", {"runs": {"bad": [1, 2]}}, ["config key runs.bad:", "expected object or null"]),
    ("defaults-is-a-string", {"defaults": "fast", "runs": {"bad": {}}}, ["config key defaults:", "expected object"]),
    # unknown keys, at every level
    ("unknown-key-in-defaults", {"defaults": {"epochs": 3}, "runs": {"bad": {}}}, ["config key defaults.epochs:", "unknown key", "training"]),
    ("unknown-key-in-space", run(space={"chanels": 8}), ["config key runs.bad.space.chanels:", "unknown key", "channels"]),
    ("unknown-key-in-task", run(task={"trainsize": 8}), ["config key runs.bad.task.trainsize:", "unknown key", "train_size"]),
    ("unknown-key-in-training", run(training={"learning_rate": 0.1}), ["config key runs.bad.training.learning_rate:", "unknown key", "lr"]),
    ("unknown-key-in-resources", run(resources={"cpus": 2}), ["config key runs.bad.resources.cpus:", "unknown key", "mem_mb"]),
    # wrong types
    ("training-is-a-string", run(training="fast"), ["config key runs.bad.training:", "expected object"]),
    ("strategy-is-null", run(strategy=None), ["config key runs.bad.strategy:", "expected object, got None"]),
    ("epochs-is-a-string", run(training={"epochs": "10"}), ["config key runs.bad.training.epochs:", "expected integer, got '10'"]),
    ("epochs-is-a-bool", run(training={"epochs": True}), ["config key runs.bad.training.epochs:", "expected integer"]),
    ("generations-is-a-float", run(generations=2.0), ["config key runs.bad.generations:", "expected integer, got 2.0"]),
    ("lr-is-a-string", run(training={"lr": "0.1"}), ["config key runs.bad.training.lr:", "expected number"]),
    ("download-is-a-string", run(task={"download": "no"}), ["config key runs.bad.task.download:", "expected boolean"]),
    ("seed-is-a-bool", run(seed=True), ["config key runs.bad.seed:", "expected integer"]),
    # out of range
    ("epochs-negative", run(training={"epochs": -1}), ["config key runs.bad.training.epochs:", ">= 1, got -1"]),
    ("batch-size-zero", run(training={"batch_size": 0}), ["config key runs.bad.training.batch_size:", ">= 1"]),
    ("label-smoothing-one", run(training={"label_smoothing": 1.0}), ["config key runs.bad.training.label_smoothing:", "< 1"]),
    ("momentum-above-one", run(training={"momentum": 1.5}), ["config key runs.bad.training.momentum:", "<= 1"]),
    ("candidates-zero", run(candidates=0), ["config key runs.bad.candidates:", ">= 1, got 0"]),
    ("candidates-negative", run(candidates=-3), ["config key runs.bad.candidates:", ">= 1, got -3"]),
    ("population-zero", run(population=0), ["config key runs.bad.population:", ">= 2, got 0"]),
    ("population-negative-in-defaults", {"defaults": {"population": -4}, "runs": {"bad": {}}}, ["config key defaults.population:", ">= 2"]),
    ("val-size-zero", run(task={"val_size": 0}), ["config key runs.bad.task.val_size:", ">= 1"]),
    # unknown names
    ("unknown-strategy-in-defaults", {"defaults": {"strategy": {"name": "bayes"}}, "runs": {"bad": {}}},
     ["config key defaults.strategy.name:", "'bayes'", "reinforce"]),
    ("unknown-space", run(space={"name": "darts"}), ["config key runs.bad.space.name:", "chain, nb201"]),
    ("unknown-task", run(task={"name": "imagenet"}), ["config key runs.bad.task.name:", "digits"]),
    ("unknown-evaluator", run(evaluator={"name": "zero_cost"}), ["config key runs.bad.evaluator.name:", "table, train"]),
    ("unknown-optimizer", run(training={"optimizer": "rmsprop"}), ["config key runs.bad.training.optimizer:", "adam, adamw, sgd"]),
    ("unknown-schedule", run(training={"schedule": "step"}), ["config key runs.bad.training.schedule:", "constant, cosine"]),
    # options that belong to another strategy, space or evaluator
    ("random-with-sample-size", run(strategy={"name": "random", "sample_size": 3}),
     ["config key runs.bad.strategy.sample_size:", "strategy 'random' takes no option 'sample_size'"]),
    ("rea-with-selection", run(strategy={"name": "rea", "selection": "tournament"}),
     ["config key runs.bad.strategy.selection:", "'rea' takes no option", "sample_size"]),
    ("ls-with-formulation", run(strategy={"name": "ls", "formulation": "edit"}),
     ["config key runs.bad.strategy.formulation:", "'ls' takes no option", "restart"]),
    ("chain-with-channels", run(space={"name": "chain", "channels": 8}),
     ["config key runs.bad.space.channels:", "space 'chain' takes no option 'channels'", "max_layers"]),
    ("train-evaluator-with-table-path", run(evaluator={"name": "train", "path": "x.csv"}),
     ["config key runs.bad.evaluator.path:", "evaluator 'train' takes no option 'path'", "its options: latency"]),
    # the table evaluator
    ("table-without-path", {"runs": {"bad": table(name="table", arch_column="arch", val_column="val")}},
     ["config key runs.bad.evaluator.path:", "needs `path`"]),
    ("table-file-missing", {"runs": {"bad": table(name="table", path="/no/such/t.csv", arch_column="arch", val_column="val")}},
     ["config key runs.bad.evaluator.path:", "/no/such/t.csv not found"]),
    ("table-bad-arch-column", {"runs": {"bad": table(name="table", path=TABLE, arch_column="Arch", val_column="val")}},
     ["config key runs.bad.evaluator.arch_column:", "no column 'Arch'", "arch, val, test"]),
    ("table-bad-test-column", {"runs": {"bad": table(name="table", path=TABLE, arch_column="arch", val_column="val", test_column="t")}},
     ["config key runs.bad.evaluator.test_column:", "no column 't'"]),
]

# Run names that could put a run anywhere but its own folder under results/.
BAD_NAMES: list[tuple[Any, str]] = [
    ("../escape", "path separator"),
    ("a/b", "path separator"),
    ("/abs", "path separator"),
    ("a\\b", "path separator"),
    ("", "empty"),
    (".hidden", "starts with '.'"),
    ("..", "'..'"),
    ("a..b", "'..'"),
    ("my run", "contains ' '"),
    ("tab\there", "contains '\\t'"),
    ("new\n", "contains '\\n'"),
    ("-x", "starts with '-'"),
    ("x" * 101, "longer than 100"),
    (7, "not a string"),
]
REFUSED += [(f"run-name-{i}", {"runs": {name: {}}}, ["config key runs:", f"run name {name!r}", why, "results/<name>"])
            for i, (name, why) in enumerate(BAD_NAMES)]


def _write(path: Path, config: Any, table_path: Path) -> Path:
    text = config if isinstance(config, str) else yaml.safe_dump(config, sort_keys=False)
    path.write_text(text.replace(TABLE, str(table_path)))
    return path


@pytest.mark.parametrize("config, words", [c[1:] for c in REFUSED], ids=[c[0] for c in REFUSED])
def test_malformed_config_is_refused_naming_the_key(tmp_path, nb201_table, config, words):
    path = _write(tmp_path / "bad.yaml", config, nb201_table)
    with pytest.raises(ConfigError) as err:
        resolve_runs(load_config(path))
    message = str(err.value)
    for word in words:
        assert word in message, f"{word!r} not in: {message}"


def test_the_table_has_distinct_cases():
    ids = [c[0] for c in REFUSED]
    assert len(ids) == len(set(ids)) and len(ids) >= 20


@pytest.mark.parametrize("name", ["demo", "rea-s0", "a.b_c-1", "X" * 100])
def test_plain_run_names_are_accepted(nb201_table, name):
    assert list(resolve_runs({"runs": {name: table_run(nb201_table)}})) == [name]


SNAKEMAKE_CASES = ["epochs-negative", "random-with-sample-size", "run-name-0", "table-bad-arch-column"]


def test_snakemake_refuses_before_any_job(tmp_path, nb201_table):
    # Snakemake takes seconds to start, mostly waiting: the cases run side by side.
    def dry_run(case: str) -> tuple[Path, list[str], subprocess.CompletedProcess]:
        config, words = next(c[1:] for c in REFUSED if c[0] == case)
        workdir = tmp_path / case / "work"
        workdir.mkdir(parents=True)
        path = _write(tmp_path / case / "bad.yaml", config, nb201_table)
        return workdir, words, snakemake(workdir, "-n", "--configfile", str(path), check=False, timeout=180)

    with ThreadPoolExecutor(len(SNAKEMAKE_CASES)) as pool:
        results = list(pool.map(dry_run, SNAKEMAKE_CASES))
    for case, (workdir, words, proc) in zip(SNAKEMAKE_CASES, results):
        assert proc.returncode != 0, case
        for word in words:
            assert word in proc.stderr, f"{case}: {word!r} not in stderr:\n{proc.stderr[-3000:]}"
        assert not (workdir / "results").exists() and not (workdir.parent / "results").exists(), case
