"""Samples per second of one candidate's training: our train evaluator against a bare
PyTorch loop doing the same work, and against the previous path (the generic DataLoader).

    python scripts/train_speed.py                       # CPU: digits and CIFAR-shaped data; the GPU part where there is one
    python scripts/train_speed.py --parts cifar --repeats 5
    python scripts/train_speed.py --parts gpu --gpu-dry # the GPU part's code on the CPU at a toy size

The bare loop: the same network (the space's build, the same seed), the data as
tensors in memory, the same batch size, epochs, SGD with Nesterov momentum,
weight decay, cosine schedule and gradient clipping, one validation pass per
epoch and a test pass at the end; no logs, no checks, no per-batch `.item()`.

CPU parts (one thread, as the workflow's jobs):
- digits: the default search's candidate (nb201 C=8 N=1, 300 training images,
  8 epochs, batch 64); throughput of the epochs themselves (training and the
  validation pass: epochs.csv's seconds, and the same span of the bare loop).
- cifar: a fabricated cifar-10-batches-py of 10,000 random training images read
  by torchvision's own CIFAR10 code, nb201 C=8 N=1, 2 epochs, batch 64; the
  whole call, reading and decoding included, each evaluator call with an
  empty data cache (a first job); `--warm` adds calls that find the cache.

GPU part (only where torch sees one, else it says so): nb201 C=16 N=5, the
median-FLOPs cell and the largest (every edge nor_conv_3x3), 50,000 random
32x32 images, batch 256, NAS-Bench-201's recipe (SGD 0.1, Nesterov, 5e-4,
cosine); seconds per epoch after the first and the 12-epoch time they
extrapolate to, for the previous path and the new one, bf16 off and on; then
1, 2, 4 and 8 trainings of 3 epochs at once on the one GPU (separate
processes, as slots run them): each one's time and the samples per second of all.
Prints one line per figure and writes them as TSV (--out).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.helpers: the fabricated CIFAR-10 layout

from nas.evaluators import evaluator_for, training  # noqa: E402
from nas.io import write_tsv  # noqa: E402
from nas.spaces import make_space  # noqa: E402
from nas.tasks import memory, task_for  # noqa: E402
from tests.helpers import write_cifar10  # noqa: E402

CELL = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
LARGEST = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"
RECIPE = {"epochs": 8, "batch_size": 64, "lr": 0.05, "threads": 1, "device": "cpu"}
NB201_RECIPE = {"batch_size": 256, "lr": 0.1, "momentum": 0.9, "nesterov": True, "weight_decay": 5e-4,
                "schedule": "cosine", "eval_batch_size": 512}
VAL = 2_000  # CIFAR-shaped part: validation images of the 10,000
COLUMNS = ("part", "path", "arch", "repeat", "samples", "seconds", "samples_per_s")


def spec_of(arch: str, space: dict, task: dict, recipe: dict, seed: int = 1) -> dict[str, Any]:
    return {"candidate": "c00", "arch": arch, "seed": seed, "run_seed": 0, "space": space, "task": task,
            "training": recipe, "evaluator": {"name": "train"}}


def evaluator_run(spec: dict[str, Any]) -> tuple[float, dict[str, Any]]:
    """Wall seconds of one call of the train evaluator's loop, and its result."""
    start = time.perf_counter()
    result = training.train(spec, evaluator_for(spec), log=lambda _: None)
    return time.perf_counter() - start, result


def bare_loop(spec: dict[str, Any], load, device: torch.device) -> tuple[float, float, dict[str, float]]:
    """(whole seconds, seconds of the epochs, accuracies) of the bare loop; `load()` gives
    (train_x, train_y, val_x, val_y, test_x, test_y) as normalised tensors."""
    recipe = {**training.TRAINING_DEFAULTS, **spec["training"]}
    torch.set_num_threads(int(recipe["threads"]))
    start = time.perf_counter()
    tx, ty, vx, vy, sx, sy = (t.to(device) for t in load())
    space = make_space(spec["space"])
    torch.manual_seed(spec["seed"])
    model = space.build(space.from_string(spec["arch"]), tuple(tx.shape[1:]), 10).to(device)
    if recipe["channels_last"]:
        model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=recipe["lr"], momentum=recipe["momentum"],
                                nesterov=recipe["nesterov"], weight_decay=recipe["weight_decay"])
    bs, n = recipe["batch_size"], len(ty)
    steps = recipe["epochs"] * ((n + bs - 1) // bs)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)
    generator = torch.Generator().manual_seed(spec["seed"])
    autocast = dict(device_type=device.type, dtype=torch.bfloat16, enabled=recipe["precision"] == "bf16")

    def accuracy(x, y) -> float:
        model.eval()
        correct = torch.zeros((), device=device, dtype=torch.int64)
        with torch.no_grad(), torch.autocast(**autocast):
            for i in range(0, len(y), recipe["eval_batch_size"]):
                correct += (model(x[i:i + recipe["eval_batch_size"]]).argmax(1) == y[i:i + recipe["eval_batch_size"]]).sum()
        return 100.0 * correct.item() / len(y)

    epochs_start = time.perf_counter()
    for _ in range(recipe["epochs"]):
        model.train()
        order = torch.randperm(n, generator=generator).to(device)
        for i in range(0, n, bs):
            idx = order[i:i + bs]
            optimizer.zero_grad(set_to_none=True)
            with torch.autocast(**autocast):
                loss = nn.functional.cross_entropy(model(tx[idx]), ty[idx])
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), recipe["grad_clip"])
            optimizer.step()
            scheduler.step()
        val = accuracy(vx, vy)
    _sync(device)
    epochs_seconds = time.perf_counter() - epochs_start
    test = accuracy(sx, sy)
    return time.perf_counter() - start, epochs_seconds, {"val_acc": val, "test_acc": test}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def tensors_of(spec: dict[str, Any]):
    """The task's splits as the bare loop holds them: normalised tensors (the in-memory sets' batches)."""
    def load():
        splits = task_for({**spec["task"], "in_memory": True}).splits(spec["run_seed"])
        out = []
        for part in (splits.train, splits.val, splits.test):
            x, y = part.batch(torch.arange(len(part)))
            out += [x, y]
        return out
    return load


def row(part: str, path: str, arch: str, repeat: int, samples: int, seconds: float) -> dict[str, Any]:
    return {"part": part, "path": path, "arch": arch, "repeat": repeat, "samples": samples,
            "seconds": round(seconds, 3), "samples_per_s": round(samples / seconds, 1)}


def digits_part(repeats: int) -> list[dict[str, Any]]:
    space = {"name": "nb201", "channels": 8, "cells_per_stage": 1}
    task = {"name": "digits", "train_size": 300, "val_size": 300}
    rows = []
    for r in range(-1, repeats):  # round -1 warms the process up (first optimizer, allocator): not counted
        for path, in_memory in (("evaluator", True), ("previous", False)):
            spec = spec_of(CELL, space, {**task, "in_memory": in_memory}, RECIPE)
            _, result = evaluator_run(spec)
            seconds = sum(e["seconds"] for e in result.epochs)
            rows.append(row("digits", path, CELL, r, RECIPE["epochs"] * 300, seconds))
        spec = spec_of(CELL, space, task, RECIPE)
        _, epochs_seconds, _ = bare_loop(spec, tensors_of(spec), torch.device("cpu"))
        rows.append(row("digits", "bare", CELL, r, RECIPE["epochs"] * 300, epochs_seconds))
    return [r for r in rows if r["repeat"] >= 0]


def cifar_part(repeats: int, warm: bool, workdir: Path) -> list[dict[str, Any]]:
    root = workdir / "cifar"
    write_cifar10(root, n=2000)  # 5 x 2,000 training images, 2,000 test images
    space = {"name": "nb201", "channels": 8, "cells_per_stage": 1}
    task = {"name": "cifar10", "root": str(root), "val_size": VAL}
    recipe = {**RECIPE, "epochs": 2}
    samples = recipe["epochs"] * (10_000 - VAL)
    rows = []

    def bare_load():
        from torchvision.datasets import CIFAR10

        from nas.tasks.splits import hold_out

        # torchvision's reader, then the same arithmetic as ToTensor and Normalize, on all images at once.
        train, test = CIFAR10(str(root), train=True), CIFAR10(str(root), train=False)
        mean = torch.tensor((0.4914, 0.4822, 0.4465)).view(1, 3, 1, 1)
        std = torch.tensor((0.2470, 0.2435, 0.2616)).view(1, 3, 1, 1)

        def norm(data):
            return torch.from_numpy(data).permute(0, 3, 1, 2).contiguous().float().div(255).sub_(mean).div_(std)

        x, y = norm(train.data), torch.tensor(train.targets)
        kept, held = hold_out(len(y), VAL, 0)  # the task's split of run seed 0
        return x[kept], y[kept], x[held], y[held], norm(test.data), torch.tensor(test.targets)

    for r in range(repeats):
        for path, in_memory in (("evaluator", True), ("previous", False)):
            os.environ[memory.CACHE_ENV] = tempfile.mkdtemp(dir=workdir)  # a first job: nothing decoded yet
            seconds, _ = evaluator_run(spec_of(CELL, space, {**task, "in_memory": in_memory}, recipe))
            rows.append(row("cifar", path, CELL, r, samples, seconds))
            if warm and in_memory:
                seconds, _ = evaluator_run(spec_of(CELL, space, {**task, "in_memory": True}, recipe))
                rows.append(row("cifar", "evaluator-warm-cache", CELL, r, samples, seconds))
        seconds, _, _ = bare_loop(spec_of(CELL, space, task, recipe), bare_load, torch.device("cpu"))
        rows.append(row("cifar", "bare", CELL, r, samples, seconds))
    return rows


# -- the GPU part ------------------------------------------------------------------------


def median_flops_cell(space: dict, shape: tuple[int, int, int]) -> str:
    """The nb201 cell whose FLOPs (the torch-free cost) are the median of all 15,625."""
    nb201 = make_space(space)
    costs = sorted((nb201.cost(g, shape, 10)["flops"], nb201.to_string(g)) for g in nb201.all_genomes())
    return costs[len(costs) // 2][1]


def gpu_part(workdir: Path, dry: bool) -> list[dict[str, Any]]:
    device = torch.device("cuda" if not dry else "cpu")
    images, epochs, concurrency = (50_000, 12, (1, 2, 4, 8)) if not dry else (512, 2, (1, 2))
    measured_epochs = 3 if not dry else 2  # the first (warm-up, cudnn autotuning) and two timed
    space = {"name": "nb201", "channels": 16 if not dry else 4, "cells_per_stage": 5 if not dry else 1}
    name = torch.cuda.get_device_name(0) if not dry else "cpu (dry run)"
    print(f"# GPU part on {name}")
    root = workdir / "cifar-gpu"
    write_cifar10(root, n=images // 5)
    task = {"name": "cifar10", "root": str(root), "val_size": images // 10}
    rows = []
    for arch in (median_flops_cell(space, (3, 32, 32)), LARGEST):
        for path, in_memory in (("previous", False), ("evaluator", True)):
            for precision in ("fp32", "bf16"):
                recipe = {**NB201_RECIPE, "epochs": measured_epochs, "precision": precision, "device": device.type}
                _, result = evaluator_run(spec_of(arch, space, {**task, "in_memory": in_memory}, recipe))
                later = [e["seconds"] for e in result.epochs[1:]]
                per_epoch = statistics.median(later)
                train_images = images - task["val_size"]
                rows.append(row("gpu-epoch", f"{path}-{precision}", arch, 0, train_images, per_epoch))
                total = result.epochs[0]["seconds"] + (epochs - 1) * per_epoch
                rows.append(row("gpu-12-epochs", f"{path}-{precision}", arch, 0, epochs * train_images, total))
    arch = median_flops_cell(space, (3, 32, 32))
    for k in concurrency:
        rows += _at_once(k, spec_of(arch, space, {**task, "in_memory": True},
                                    {**NB201_RECIPE, "epochs": 3, "device": device.type}), workdir)
    return rows


def _at_once(k: int, spec: dict[str, Any], workdir: Path) -> list[dict[str, Any]]:
    """k trainings at once in their own processes (`python -m nas train`), as k slots of one GPU run them."""
    folder = Path(tempfile.mkdtemp(dir=workdir))
    procs, start = [], time.perf_counter()
    for i in range(k):
        path = folder / f"c{i:02d}.yaml"
        path.write_text(yaml.safe_dump({**copy.deepcopy(spec), "candidate": f"c{i:02d}", "seed": i + 1}))
        procs.append(subprocess.Popen([sys.executable, "-m", "nas", "train", str(path), "--out", str(folder / f"c{i:02d}")],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    for p in procs:
        if p.wait() != 0:
            raise SystemExit(f"a training of {k} at once failed (see {folder})")
    wall = time.perf_counter() - start
    samples = sum(json.loads((folder / f"c{i:02d}" / "metrics.json").read_text())["epochs"] for i in range(k))
    train_images = len(task_for(spec["task"]).splits(0).train)
    each = [json.loads((folder / f"c{i:02d}" / "metrics.json").read_text())["train_seconds"] for i in range(k)]
    return [row("gpu-at-once", f"{k}-at-once", spec["arch"], 0, samples * train_images, wall),
            row("gpu-at-once-each", f"{k}-at-once", spec["arch"], 0, 3 * train_images, statistics.median(each))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--parts", default="digits,cifar,gpu", help="comma-separated: digits, cifar, gpu")
    parser.add_argument("--repeats", type=int, default=5, help="cifar: rounds (each part's paths in turn)")
    parser.add_argument("--digits-repeats", type=int, default=15, help="digits: rounds (a training is under a second)")
    parser.add_argument("--warm", action="store_true", help="cifar: also calls that find the data cache")
    parser.add_argument("--gpu-dry", action="store_true", help="the GPU part on the CPU at a toy size (a check of the code)")
    parser.add_argument("--out", default=None, help="TSV of every measurement")
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        os.environ.setdefault(memory.CACHE_ENV, str(workdir / "cache"))
        if "digits" in parts:
            rows += digits_part(args.digits_repeats)
        if "cifar" in parts:
            rows += cifar_part(args.repeats, args.warm, workdir)
        if "gpu" in parts:
            if torch.cuda.is_available() or args.gpu_dry:
                rows += gpu_part(workdir, args.gpu_dry)
            else:
                print("# GPU part: torch finds no GPU on this machine; skipped")
    summarise(rows)
    if args.out:
        write_tsv(args.out, COLUMNS, rows)


def summarise(rows: list[dict[str, Any]]) -> None:
    by: dict[tuple[str, str, str], list[float]] = {}
    for r in rows:
        by.setdefault((r["part"], r["arch"], r["path"]), []).append(r["samples_per_s"])
    for (part, arch, path), values in by.items():
        print(f"{part:>16} {path:>22} {statistics.median(values):10.1f} samples/s (median of {len(values)})"
              + (f"  {arch}" if part.startswith("gpu") else ""))
    for part in ("digits", "cifar"):
        # Pair by pair (each repeat's bare loop ran right after its evaluator calls), so drift cancels.
        speed = {(r["path"], r["repeat"]): r["samples_per_s"] for r in rows if r["part"] == part}
        for path in ("evaluator", "evaluator-warm-cache", "previous"):
            ratios = [speed[path, k] / speed["bare", k] for (p, k) in speed if p == path and ("bare", k) in speed]
            if ratios:
                print(f"{part}: {path} / bare = {statistics.median(ratios):.2f} x "
                      f"(min {min(ratios):.2f}, max {max(ratios):.2f}, {len(ratios)} pairs)")
    seconds = {(r["arch"], r["path"]): r["seconds"] for r in rows if r["part"] == "gpu-12-epochs"}
    for (arch, path), s in seconds.items():
        print(f"gpu: {path} 12 epochs {s:.1f} s  {arch}")


if __name__ == "__main__":
    main()
