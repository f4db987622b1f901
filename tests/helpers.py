"""What the tests share: paths, a fabricated NAS-Bench-201 table, configs, and the real
snakemake and `python -m nas` as subprocesses. Fixtures live in conftest.py."""

from __future__ import annotations

import hashlib
import importlib.util
import itertools
import pickle
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any, Callable

import numpy as np
import yaml

from nas.evaluators import Evaluation, evaluator_for
from nas.evaluators import training
from nas.tasks import Splits, TaskInfo, task_for

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).parent / "snakemake")
SNAKENAS = str(Path(sys.executable).parent / "snakenas")
OPS3 = ["none", "skip_connect", "nor_conv_3x3"]


def nb201_arch(ops: list[str]) -> str:
    return "|{}~0|+|{}~0|{}~1|+|{}~0|{}~1|{}~2|".format(*ops)


def synthetic_score(ops: list[str]) -> float:
    """A smooth, known landscape: convolutions help, `none` on the last edges hurts."""
    weight = {"none": 0.0, "skip_connect": 1.0, "nor_conv_3x3": 2.0, "nor_conv_1x1": 1.5, "avg_pool_3x3": 0.5}
    return 50.0 + sum(weight[op] * (1 + i) for i, op in enumerate(ops))


def write_nb201_table(path: Path) -> Path:
    """A benchmark table over the 729 cells with three operations."""
    lines = ["arch,val,test"]
    for ops in itertools.product(OPS3, repeat=6):
        score = synthetic_score(list(ops))
        lines.append(f"{nb201_arch(list(ops))},{score:.3f},{score - 1:.3f}")
    path.write_text("\n".join(lines) + "\n")
    return path


def write_cost_table(path: Path) -> Path:
    """The 729 three-op cells with a cost to trade accuracy against: `size` (more
    convolutions, bigger; counted like parameters) and `lat` (a latency: each
    edge's op costs its own amount, convolutions most)."""
    lines = ["arch,val,test,size,lat"]
    cost = {"none": 0.0, "skip_connect": 0.1, "nor_conv_3x3": 1.0}
    for ops in itertools.product(OPS3, repeat=6):
        score = synthetic_score(list(ops))
        size = 1000 + 9000 * sum(op == "nor_conv_3x3" for op in ops)
        lat = 1.0 + sum(cost[op] * (1 + i % 2) for i, op in enumerate(ops))
        lines.append(f"{nb201_arch(list(ops))},{score:.3f},{score - 1:.3f},{size},{lat:.3f}")
    path.write_text("\n".join(lines) + "\n")
    return path


def cost_table_run(table: Path, **overrides: Any) -> dict[str, Any]:
    """A run on write_cost_table's table: accuracy, params (`size`) and latency_ms (`lat`)."""
    run = {
        **table_run(table),
        "evaluator": {"name": "table", "tables": [{"path": str(table), "arch_column": "arch"}],
                      "columns": {"val_acc": "val", "test_acc": "test", "params": "size", "latency_ms": "lat"},
                      "cheap": ["params"]},
        "objectives": [{"metric": "val_acc"}, {"metric": "params"}],
    }
    run.update(overrides)
    return run


def table_run(table: Path, **overrides: Any) -> dict[str, Any]:
    run = {
        "seed": 0,
        "generations": 3,
        "population": 6,
        "candidates": 4,
        "space": {"name": "nb201", "ops": OPS3},
        "strategy": {"name": "rea", "sample_size": 2},
        "evaluator": {"name": "table", "path": str(table), "arch_column": "arch", "val_column": "val", "test_column": "test"},
    }
    run.update(overrides)
    return run


def write_config(path: Path, runs: dict[str, Any], defaults: dict[str, Any] | None = None) -> Path:
    config: dict[str, Any] = {"runs": runs}
    if defaults is not None:
        config["defaults"] = defaults
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def without_slurm() -> dict[str, str]:
    """The environment of a snakemake that uses no cluster: a stub `scontrol` first
    on PATH, so that the slurm plugin's question at start-up is answered at once."""
    return {**os.environ, "PATH": f"{REPO / 'tests' / 'no-slurm'}{os.pathsep}{os.environ.get('PATH', '')}"}


def snakemake(workdir: Path, *args: str, timeout: float = 600, check: bool = True,
              slurm: bool = False) -> subprocess.CompletedProcess:
    """The real snakemake on the project's Snakefile, in `workdir`; `slurm` for the one
    test that talks to a cluster (the others start without asking SLURM anything)."""
    cmd = [SNAKEMAKE, "-s", str(REPO / "Snakefile"), "--directory", str(workdir), "--cores", "2", *args]
    env = None if slurm else without_slurm()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=workdir, env=env)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}")
    return proc


def kill_when(workdir: Path, appears: Path, *args: str, timeout: float = 300) -> None:
    """Start the real snakemake in `workdir` and SIGKILL it with every job it started
    (as a lost node or an OOM killer would) as soon as `appears` exists (a step's
    log: the step is running), or when it ends or `timeout` passes."""
    proc = subprocess.Popen(
        [SNAKEMAKE, "-s", str(REPO / "Snakefile"), "--directory", str(workdir), "--cores", "2", *args],
        cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        env=without_slurm())
    deadline = time.time() + timeout
    while not appears.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.005)
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def nas_cli(*args: str, cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    """The `snakenas` command (the installed console script), in `cwd`."""
    proc = subprocess.run([SNAKENAS, *args], capture_output=True, text=True, cwd=cwd)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakenas {args} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc


def train(spec: dict[str, Any], log: Callable[[str], None] = lambda _: None,
          checkpoint_dir: Path | None = None) -> Evaluation:
    """The training loop on one spec, in this process, quietly unless `log` is given."""
    return training.train(spec, evaluator_for(spec), checkpoint_dir=checkpoint_dir, log=log)


def look_up(spec: dict[str, Any]) -> dict[str, Any]:
    """A table evaluator's metrics for one spec (an `evaluate` for run_in_process)."""
    return evaluator_for(spec).evaluate(spec).metrics


def load_script(name: str) -> ModuleType:
    """A script of scripts/ as a module, for its functions (scripts are not a package)."""
    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# A task of a config section, the three ways the tests ask about it.
def check(cfg: dict[str, Any]) -> None:
    task_for(cfg).check()


def describe(cfg: dict[str, Any]) -> TaskInfo:
    return task_for(cfg).describe()


def load(cfg: dict[str, Any], seed: int) -> Splits:
    return task_for(cfg).splits(seed)


# -- data sets fabricated in their real on-disk layouts -------------------------------


def write_cifar10(root: Path, monkeypatch: Any = None, n: int = 12, patch_checksums: bool = True) -> Path:
    """cifar-10-batches-py under `root` with `n` random images in each of its six
    batch files, read by torchvision's own CIFAR10 code. The fake files have
    checksums of their own: unless `patch_checksums` is false, torchvision's
    integrity lists are told them (through `monkeypatch`, else for the process)."""
    from torchvision.datasets import CIFAR10

    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    md5 = {}
    names = [f[0] for f in CIFAR10.train_list] + [f[0] for f in CIFAR10.test_list]
    for name in names:
        batch = {"data": rng.integers(0, 255, (n, 3072), dtype=np.uint8), "labels": list(rng.integers(0, 10, n))}
        (folder / name).write_bytes(pickle.dumps(batch))
        md5[name] = hashlib.md5((folder / name).read_bytes()).hexdigest()
    meta = {"label_names": [f"c{i}" for i in range(10)]}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta))
    if patch_checksums:
        patch = monkeypatch if monkeypatch is not None else _ForProcess()
        patch.setattr(CIFAR10, "train_list", [[f[0], md5[f[0]]] for f in CIFAR10.train_list])
        patch.setattr(CIFAR10, "test_list", [[f[0], md5[f[0]]] for f in CIFAR10.test_list])
        patch.setitem(CIFAR10.meta, "md5", hashlib.md5((folder / "batches.meta").read_bytes()).hexdigest())
    return folder


class _ForProcess:
    """monkeypatch's two calls, for good (a benchmark's process)."""

    setattr = staticmethod(setattr)

    @staticmethod
    def setitem(mapping: dict, key: Any, value: Any) -> None:
        mapping[key] = value


def write_image_folder(folder: Path, classes: list[str], per_class: int, size: tuple[int, int] = (20, 24)) -> None:
    """folder/<class>/<i>.png: random RGB images of `size` (height, width)."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for c in classes:
        (folder / c).mkdir(parents=True)
        for i in range(per_class):
            Image.fromarray(rng.integers(0, 255, (*size, 3), dtype=np.uint8)).save(folder / c / f"{i}.png")
