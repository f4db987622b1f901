"""The digits task's variants: classes, rotation, noise, image_size."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
import yaml

from nas.config import ConfigError, resolve_runs
from nas.tasks import TaskError, task_for
from nas.tasks.digits import resample_matrix, variant
from tests.helpers import REPO, check, describe, load, load_script, nas_cli

BASE = {"name": "digits", "train_size": 200, "val_size": 150}


def task_id(run):
    return task_for(run["task"]).task_id()


def test_describe_reports_classes_and_shape_without_torch():
    code = ("import sys; from nas.tasks import task_for; "
            "cfg = {'name': 'digits', 'classes': [3, 1, 4], 'image_size': 16, 'rotation': 90, 'noise': 0.2}; "
            "task_for(cfg).check(); print(task_for(cfg).describe()); assert 'torch' not in sys.modules")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "input_shape=(1, 16, 16), num_classes=3" in out.stdout


@pytest.mark.parametrize("options, shape, classes", [
    ({}, (1, 8, 8), 10),
    ({"classes": [4, 5, 6, 7, 8, 9], "image_size": 6}, (1, 6, 6), 6),
    ({"image_size": 16}, (1, 16, 16), 10),
    ({"rotation": 180, "noise": 0.3}, (1, 8, 8), 10),
])
def test_variant_splits_have_the_described_shape_and_classes(options, shape, classes):
    cfg = {**BASE, **options}
    splits = load(cfg, 0)
    assert describe(cfg).input_shape == shape and describe(cfg).num_classes == classes
    assert splits.info == describe(cfg)
    for part in (splits.train, splits.val, splits.test):
        x, y = part.tensors
        assert tuple(x.shape[1:]) == shape and int(y.min()) >= 0 and int(y.max()) < classes
    assert set(splits.train.tensors[1].tolist()) == set(range(classes))
    # Normalised after the variant, with the training images' statistics.
    assert abs(float(splits.train.tensors[0].mean())) < 1e-5


def test_classes_are_relabelled_in_the_order_given():
    images = np.arange(5 * 64, dtype=np.float32).reshape(5, 8, 8)
    labels = np.array([7, 2, 9, 2, 7])
    x, y = variant(images, labels, {"classes": [7, 2]})
    assert y.tolist() == [0, 1, 1, 0] and np.array_equal(x, images[[0, 1, 3, 4]])


def test_rotation_is_exact_and_noise_is_the_same_for_every_run_seed():
    images = np.random.default_rng(0).random((3, 8, 8)).astype(np.float32)
    labels = np.zeros(3, dtype=np.int64)
    x, _ = variant(images, labels, {"rotation": 90})
    assert np.array_equal(x[0], np.rot90(images[0]))
    assert np.array_equal(variant(images, labels, {"rotation": 270})[0], np.rot90(images, 3, axes=(1, 2)))
    noisy = variant(images, labels, {"noise": 0.5})[0]
    assert np.array_equal(noisy, variant(images, labels, {"noise": 0.5})[0])
    assert 0.4 < float((noisy - images).std()) < 0.6
    # The test split is the same images whatever the run seed: the noise does not depend on it.
    cfg = {**BASE, "noise": 0.3}
    assert torch.equal(load(cfg, 0).test.tensors[1], load(cfg, 3).test.tensors[1])
    a, b = load(cfg, 1), load(cfg, 1)
    assert torch.equal(a.train.tensors[0], b.train.tensors[0])


def test_resampling_keeps_constant_images_and_the_mean():
    for dst in (4, 6, 8, 12, 16):
        m = resample_matrix(8, dst)
        assert m.shape == (dst, 8) and np.allclose(m.sum(1), 1) and (m >= 0).all()
    assert np.allclose(resample_matrix(8, 8), np.eye(8))
    image = np.random.default_rng(1).random((1, 8, 8))
    small, _ = variant(image, np.zeros(1, dtype=np.int64), {"image_size": 4})
    assert np.allclose(small[0], image[0].reshape(4, 2, 4, 2).mean((1, 3)), atol=1e-6)


@pytest.mark.parametrize("options, message", [
    ({"classes": [3]}, "task.classes must be a list of at least 2"),
    ({"classes": [1, 1, 2]}, "task.classes"),
    ({"classes": [0, 10]}, "task.classes"),
    ({"classes": "0,1"}, "task.classes"),
    ({"rotation": 45}, "task.rotation must be one of 0, 90, 180, 270"),
    ({"rotation": True}, "task.rotation"),
    ({"noise": -0.1}, "task.noise must be a number >= 0"),
    ({"noise": "high"}, "task.noise"),
    ({"image_size": 0}, "task.image_size"),
])
def test_bad_variant_options_are_refused_naming_the_key(options, message):
    with pytest.raises(TaskError, match=message):
        check({"name": "digits", **options})


def test_digits_options_are_refused_on_other_tasks(tmp_path):
    with pytest.raises(TaskError, match="task 'cifar10' takes no option 'rotation'"):
        check({"name": "cifar10", "root": str(tmp_path), "download": True, "rotation": 90})


def test_config_schema_checks_the_options():
    def run(task):
        return resolve_runs({"runs": {"r": {"task": {"name": "digits", **task}}}})["r"]["task"]

    assert run({"classes": [1, 2], "rotation": 90, "noise": 0.1, "image_size": 6})["classes"] == [1, 2]
    with pytest.raises(ConfigError, match="runs.r.task.rotation"):
        run({"rotation": 45})
    with pytest.raises(ConfigError, match="runs.r.task.classes"):
        run({"classes": [1, 12]})
    with pytest.raises(ConfigError, match="runs.r.task.noise"):
        run({"noise": -1})


def test_task_ids_tell_the_variants_apart():
    ids = [task_id({"task": t}) for t in (
        {"name": "digits", "train_size": 300},
        {"name": "digits", "train_size": 300, "rotation": 90},
        {"name": "digits", "train_size": 300, "rotation": 180, "noise": 0.3},
        {"name": "digits", "train_size": 300, "classes": [0, 1, 2, 3, 4, 5]},
        {"name": "digits", "train_size": 300, "classes": [4, 5, 6, 7, 8, 9], "image_size": 6},
    )]
    assert len(set(ids)) == len(ids)
    assert ids[4] == "digits classes=4,5,6,7,8,9 image_size=6 train_size=300"


def test_the_family_experiment_config_passes_the_check(tmp_path):
    config = tmp_path / "family.yaml"
    out = subprocess.run([sys.executable, str(REPO / "scripts" / "digits_family.py"), "--config-only", str(config),
                          "--seeds", "2"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    listed = nas_cli("check", str(config), cwd=tmp_path).stdout
    assert "rot180-noise-warm-s1" in listed and "src-size16" in listed
    runs = resolve_runs(yaml.safe_load(config.read_text()))
    targets = {r["task_id"] for n, r in runs.items() if "-cold-" in n}
    sources = {r["task_id"] for n, r in runs.items() if n.startswith("src-")}
    assert len(targets) == 2 and len(sources) == 4 and not targets & sources
    assert all(runs[n]["warm_start"]["model"] == "results/meta" for n in runs if "-warm-" in n)
    # Searches average 2 trainings a candidate; each target run re-trains its top 3 with 3 fresh seeds.
    assert all(r["training"]["repeats"] == 2 for r in runs.values())
    assert all((r.get("final") or {}).get("top") == (3 if "-s" in n and not n.startswith("src-") else None)
               for n, r in runs.items())


def test_the_family_oracle_reruns_the_warm_runs_from_the_target_s_own_cells(tmp_path):
    digits_family = load_script("digits_family")
    config = digits_family.build_config(seeds=2, source_seeds=2)
    assert [n for n in config["runs"] if n.startswith("src-noise")] == ["src-noise-s0", "src-noise-s1"]
    assert config["meta"]["runs"] == [n for n in config["runs"] if n.startswith("src-")]
    oracle = digits_family.oracle_config(config, seeds=2)
    assert sorted(oracle["runs"]) == sorted(f"{t}-oracle-s{s}" for t in digits_family.TARGETS for s in range(2))
    for name, run in oracle["runs"].items():
        target, seed = name.split("-oracle-s")
        warm = config["runs"][f"{target}-warm-s{seed}"]
        assert run["warm_start"] == {**warm["warm_start"], "model": f"results/oracle-{target}"}
        assert warm["screen"] == {"by": "meta", "keep": 0.5} and "screen" not in run
        assert {k: v for k, v in run.items() if k != "warm_start"} == \
            {k: v for k, v in warm.items() if k not in ("warm_start", "screen")}
    path = tmp_path / "oracle.yaml"
    path.write_text(yaml.safe_dump(oracle))
    assert "rot180-noise-oracle-s1" in nas_cli("check", str(path), cwd=tmp_path).stdout
