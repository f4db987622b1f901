"""The doors: evaluators and tasks behind registries, complete run settings,
task ids as before, and the objectives a run may name."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from nas.config import ConfigError, resolve_runs
from nas.evaluators import EVALUATORS, evaluator_class, evaluator_for
from nas.objectives import metric
from nas.spaces import make_space
from nas.strategies import make_strategy
from nas.tasks import TASKS, task_class, task_for
from tests.helpers import REPO, table_run

# What the code before these interfaces (fd4b6b7) called each run's task: the
# ids of earlier results must still pool with new ones.
TODAY_S_IDS = [
    ({}, "digits"),
    ({"task": {"name": "digits", "train_size": 300, "val_size": 300}}, "digits train_size=300 val_size=300"),
    ({"task": {"name": "digits", "train_size": 300, "classes": [4, 5, 6, 7, 8, 9], "image_size": 6}},
     "digits classes=4,5,6,7,8,9 image_size=6 train_size=300"),
    ({"task": {"name": "digits", "rotation": 180, "noise": 0.3}}, "digits noise=0.3 rotation=180"),
    ({"task": {"name": "cifar10", "root": "/data", "download": True, "val_size": 5000}}, "cifar10 val_size=5000"),
    ({"task": {"name": "image_folder", "root": "<folder>", "image_size": 16, "features": {"f": 1.0}}},
     "image_folder image_size=16"),
]


def image_folder(root: Path, classes: int, per_class: int, size: int = 4) -> Path:
    from PIL import Image

    rng = np.random.default_rng(0)
    for c in range(classes):
        (root / "train" / f"class{c}").mkdir(parents=True)
        for i in range(per_class):
            Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(
                root / "train" / f"class{c}" / f"{i}.png")
    return root


@pytest.mark.parametrize("settings, task_id", TODAY_S_IDS, ids=[i for _, i in TODAY_S_IDS])
def test_task_ids_are_what_they_were(tmp_path, settings, task_id):
    if "image_folder" in task_id:
        image_folder(tmp_path, 2, 1)
        settings = {"task": {**settings["task"], "root": str(tmp_path)}}
    assert resolve_runs({"runs": {"r": settings}})["r"]["task_id"] == task_id


def test_a_table_run_s_task_is_its_file_and_column(nb201_table):
    run = resolve_runs({"runs": {"r": table_run(nb201_table)}})["r"]
    assert run["task_id"] == f"table:{nb201_table.name}:val"


def test_run_settings_hold_every_default(nb201_table):
    """run.yaml spells out what constructors would otherwise fill in, so that a
    default changed in code cannot change a written run."""
    run = resolve_runs({"runs": {"r": {"strategy": {"name": "ga"}}}})["r"]
    assert run["space"] == {"name": "nb201", "channels": 16, "cells_per_stage": 5,
                            "ops": ["none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3"],
                            "stem_stride": 1}
    assert run["strategy"] == {"name": "ga", "selection": "tournament", "tournament_size": 3,
                               "crossover": "single_point", "crossover_points": 2, "crossover_rate": 0.9,
                               "mutation": "bitflip", "mutation_rate": 1 / 6, "elitism": 1}
    assert run["task"]["val_size"] == 300 and run["task"]["image_size"] == 8 and run["task"]["rotation"] == 0
    assert run["objectives"] == [{"metric": "val_acc", "direction": "max"}]
    edit = resolve_runs({"runs": {"r": {"space": {"name": "chain"}, "strategy": {"name": "reinforce",
                                                                                 "formulation": "edit"}}}})["r"]
    assert edit["strategy"]["controller"] == "mlp" and edit["space"]["layer_types"] == ["conv", "max_pool", "avg_pool"]
    table = resolve_runs({"runs": {"r": {**table_run(nb201_table), "evaluator": {
        "name": "table", "path": str(nb201_table), "arch_column": "arch", "val_column": "val"}}}})["r"]
    assert table["evaluator"]["test_column"] == "val"


@pytest.mark.parametrize("strategy", ["random", "rea", "ga", "ls", "reinforce"])
def test_resolved_options_build_the_same_strategy(strategy):
    run = resolve_runs({"runs": {"r": {"strategy": {"name": strategy}}}})["r"]
    again = make_strategy(run["strategy"], make_space(run["space"]), run["population"])
    assert {"name": strategy, **again.options()} == run["strategy"]


def test_an_image_folder_resolves_its_validation_size_from_the_files(tmp_path):
    image_folder(tmp_path, 2, 30)  # 60 images, a fifth (12) held out as test: 48 left, a fifth of them validation
    task = task_for({"name": "image_folder", "root": str(tmp_path)})
    assert task.resolved()["val_size"] == 9
    assert len(task.splits(0).val) == 9


def test_registries_are_light_and_name_their_classes():
    code = ("import sys; from nas.evaluators import evaluator_for; "
            "e = evaluator_for({'evaluator': {'name': 'train'}, 'task': {'name': 'digits'}}); "
            "print(e.columns, e.task_id(), e.needs_torch, e.per_generation); assert 'torch' not in sys.modules")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "'status', 'val_acc', 'test_acc', 'val_loss', 'train_loss', 'params'" in out.stdout
    for name in EVALUATORS:
        assert evaluator_class(name).name == name
    assert {task_class(n).__name__ for n in TASKS} == {"DigitsTask", "TorchvisionTask", "ImageFolderTask", "DigitsCanvasTask",
                                                        "VOCSegmentationTask", "CityscapesTask", "ADE20KTask"}


def test_the_table_evaluates_a_generation_at_once(nb201_table):
    run = resolve_runs({"runs": {"r": table_run(nb201_table)}})["r"]
    evaluator = evaluator_for(run)
    assert evaluator.per_generation and not evaluator.needs_torch and evaluator.inputs() == [str(nb201_table)]
    specs = [{"arch": "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"}, {"arch": "not an arch"}]
    a, b = evaluator.evaluate_generation(specs, [None, None])
    assert a.metrics["status"] == "ok" and a.metrics["val_acc"] == 50.0 and b.metrics["status"] == "missing"
    assert list(a.metrics) == list(evaluator.columns) and a.epochs == []


@pytest.mark.parametrize("objectives, words", [
    ([{"metric": "speed"}], ["runs.r.objectives.0.metric:", "unknown metric 'speed'", "val_acc"]),
    ([{"metric": "latency_ms"}], ["runs.r.objectives.0.metric:", "does not produce 'latency_ms'",
                                  "set evaluator.latency"]),
    ([{"metric": "val_acc"}, {"metric": "val_acc"}], ["runs.r.objectives.1.metric:", "named twice"]),
    ([{"metric": "test_acc"}], ["runs.r.objectives.0.metric:", "'test_acc' is reported, never selected on"]),
    ([{"metric": "train_seconds"}], ["runs.r.objectives.0.metric:", "never selected on"]),
    ([{"metric": "val_acc", "direction": "up"}], ["runs.r.objectives.0.direction:", "max, min"]),
])
def test_objectives_a_run_cannot_have_are_refused(objectives, words):
    with pytest.raises(ConfigError) as err:
        resolve_runs({"runs": {"r": {"objectives": objectives}}})
    for word in words:
        assert word in str(err.value)


def test_an_objective_the_table_does_not_fill_is_refused(nb201_table):
    with pytest.raises(ConfigError, match="evaluator 'table' does not produce 'params'"):
        resolve_runs({"runs": {"r": {**table_run(nb201_table), "objectives": [{"metric": "params"}]}}})


def test_a_minimised_objective_is_selected_the_other_way():
    run = resolve_runs({"runs": {"r": {"objectives": [{"metric": "val_loss"}]}}})["r"]
    assert run["objectives"] == [{"metric": "val_loss", "direction": "min"}] and metric("val_loss").direction == "min"
