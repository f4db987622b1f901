import copy

import pytest
import yaml

from nas.config import ConfigError, candidates_in, frozen, load_config, resolve_runs
from tests.helpers import REPO, table_run


def test_default_config_resolves_with_every_default_filled():
    runs = resolve_runs(load_config(REPO / "config" / "config.yaml"))
    demo = runs["demo"]
    assert demo["name"] == "demo"
    assert demo["strategy"]["name"] == "rea" and demo["space"]["name"] == "nb201"
    assert demo["task"]["name"] == "digits" and demo["evaluator"]["name"] == "train"
    assert demo["resources"]["gpus"] == 0 and demo["task"]["val_size"] == 300 and demo["task_id"].startswith("digits")
    assert "generations" not in frozen(demo) and "resources" not in frozen(demo)
    assert candidates_in(demo, 0) == demo["population"] and candidates_in(demo, 3) == demo["candidates"]


def test_runs_override_defaults_and_a_new_name_starts_afresh(nb201_table):
    config = {
        "defaults": table_run(nb201_table, strategy={"name": "ga", "elitism": 2}),
        "runs": {"a": None, "b": {"seed": 3, "strategy": {"name": "rea"}}, "c": {"strategy": {"elitism": 1}}},
    }
    runs = resolve_runs(config)
    assert runs["a"]["strategy"]["name"] == "ga" and runs["a"]["strategy"]["elitism"] == 2
    # rea's own defaults only: nothing of the default ga's options leaks into it.
    assert runs["b"]["strategy"] == {"name": "rea", "sample_size": 3, "mutation": "space", "mutation_rate": 1.0}
    assert runs["b"]["seed"] == 3
    assert runs["c"]["strategy"]["name"] == "ga" and runs["c"]["strategy"]["elitism"] == 1


BAD = [
    # (path into the run settings, value, words the message must contain)
    (("strategy", "name"), "hillclimb", ["runs.r.strategy.name", "'hillclimb'", "choose one of: bananas, ga, ", "random, rea"]),
    (("space", "name"), "darts", ["runs.r.space.name", "nb201"]),
    (("space", "ops"), ["nor_conv_7x7"], ["runs.r.space.ops.0", "nor_conv_3x3"]),
    (("task", "name"), "imagenet", ["runs.r.task.name", "cifar10"]),
    (("population",), 1, ["runs.r.population", ">= 2"]),
    (("population",), "eight", ["runs.r.population", "integer"]),
    (("generations",), 0, ["runs.r.generations", ">= 1"]),
    (("candidates",), 0, ["runs.r.candidates", ">= 1"]),
    (("seed",), -1, ["runs.r.seed", ">= 0"]),
    (("strategy", "crossover_rate"), 1.5, ["runs.r.strategy.crossover_rate", "<= 1"]),
    (("strategy", "mutation_rate"), -0.1, ["runs.r.strategy.mutation_rate"]),
    (("strategy", "selection"), "best", ["runs.r.strategy.selection", "roulette"]),
    (("strategy", "elitism"), 9, ["runs.r.strategy", "elitism"]),
    (("strategy", "sample_size"), 50, ["runs.r.strategy.sample_size", "larger than population"]),
    (("strategy", "stratgey"), 1, ["runs.r.strategy.stratgey", "unknown key"]),
    (("stratgy",), {"name": "ga"}, ["runs.r.stratgy", "unknown key"]),
    (("training", "lr"), 0, ["runs.r.training.lr", "> 0"]),
    (("training", "optimizer"), "lion", ["runs.r.training.optimizer", "adamw"]),
    (("training", "device"), "tpu", ["runs.r.training.device", "cuda"]),
    (("training", "epochs"), 2.5, ["runs.r.training.epochs", "integer"]),
    (("evaluator", "name"), "oracle", ["runs.r.evaluator.name", "table"]),
    (("evaluator", "val_column"), "nope", ["runs.r.evaluator", "no column 'nope'"]),
    (("evaluator", "path"), "/no/such/table.csv", ["runs.r.evaluator", "/no/such/table.csv", "not found"]),
    (("resources", "gpus"), -1, ["runs.r.resources.gpus", ">= 0"]),
    (("space", "max_layers"), 3, ["runs.r.space", "max_layers"]),
]


@pytest.mark.parametrize("path, value, words", BAD, ids=[".".join(b[0]) + "=" + str(b[1]) for b in BAD])
def test_bad_values_are_refused_with_the_key_named(nb201_table, path, value, words):
    run = table_run(nb201_table)
    node = run
    for key in path[:-1]:
        node = node.setdefault(key, {})
    node[path[-1]] = value
    with pytest.raises(ConfigError) as err:
        resolve_runs({"runs": {"r": run}})
    for word in words:
        assert word in str(err.value)


# Run names that could leave results/: tests/test_config_refusals.py.


def test_error_in_defaults_is_reported_at_defaults(nb201_table):
    config = {"defaults": {**table_run(nb201_table), "population": 1}, "runs": {"r": {}}}
    with pytest.raises(ConfigError, match=r"defaults\.population"):
        resolve_runs(config)


def test_missing_dataset_path_is_refused():
    config = {"runs": {"r": {"task": {"name": "cifar10", "root": "/no/such/data"}}}}
    with pytest.raises(ConfigError, match=r"runs\.r\.task.*/no/such/data"):
        resolve_runs(config)


def test_top_level_typos_and_empty_runs_are_refused():
    with pytest.raises(ConfigError, match="unknown key"):
        resolve_runs({"runs": {"r": {}}, "default": {}})
    with pytest.raises(ConfigError, match="runs"):
        resolve_runs({"runs": {}})


def test_load_config_names_the_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("runs: [\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)


def test_resolve_does_not_modify_the_config(nb201_table):
    config = {"defaults": table_run(nb201_table), "runs": {"r": {"seed": 1}}}
    before = copy.deepcopy(config)
    resolve_runs(config)
    assert config == before


def test_schema_is_valid_json_schema():
    import jsonschema

    schema = yaml.safe_load((REPO / "config" / "schema.yaml").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)


def test_resolving_the_default_config_does_not_import_torch():
    import subprocess
    import sys

    code = ("import sys; from nas.config import load_config, resolve_runs; "
            "resolve_runs(load_config('config/config.yaml')); assert 'torch' not in sys.modules, 'torch imported'")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


@pytest.mark.parametrize("name", ["config.yaml", "examples/long.yaml", "examples/compare.yaml", "examples/screen.yaml"])
def test_shipped_configs_resolve(name):
    runs = resolve_runs(load_config(REPO / "config" / name))
    assert runs and all(run["name"] == key for key, run in runs.items())
