"""The training loop of the train evaluator (nas/evaluators/train.py).

The task says what a batch's loss is and what is measured (`Task.step`,
`Task.evaluate`); this loop owns the rest: the network from the space and
the task, the optimizer and schedule of the run's recipe, epochs, logs and
checkpoints. A candidate whose loss becomes NaN/inf ends with status
`diverged`, one that runs out of memory with `oom`; both are results, not
crashes. Anything else that goes wrong is a bug and propagates.

With `execution.checkpoints`, the model, optimizer, schedule, random states
and epoch rows are saved after each epoch; a training started again on the
same spec resumes after the last saved epoch and ends with the same metrics
as an uninterrupted one. Checkpoints are loaded with `weights_only=True` (no
pickle), and one that is unreadable or of another spec is ignored.
"""

from __future__ import annotations

import copy
import dataclasses
import gc
import os
import platform
import statistics
import io
import math
import sys
import time
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn
from torch.utils.data import DataLoader

from nas import gpu_slots, layout
from nas.evaluators.base import Evaluation, Evaluator
from nas.evaluators.flops import count_flops, count_params
from nas.evaluators.recipe import TRAIN_AND_VAL, TRAINING_DEFAULTS
from nas.evaluators.repeats import fingerprint
from nas.io import atomic_write_bytes
from nas.seeding import int_seed
from nas.spaces import make_space
from nas.tasks import Task
from nas.tasks.memory import Batches, MemorySet


class _Diverged(Exception):
    pass


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def device_for(choice: str, log: Callable[[str], None] = _stderr) -> torch.device:
    """The device of `training.device` (auto: the GPU when there is one). A job that
    may use CUDA first takes a GPU slot of its machine (nas/gpu_slots.py), before
    anything initialises CUDA, so that it sees its slot's GPU only."""
    if choice != "cpu":
        gpu_slots.claim(log)
    if choice == "cuda" and not torch.cuda.is_available():
        raise ValueError("training.device: cuda, but torch finds no GPU here; use device: auto or cpu")
    if choice == "cuda" or (choice == "auto" and torch.cuda.is_available()):
        return torch.device("cuda")
    return torch.device("cpu")


def _is_oom(error: BaseException) -> bool:
    return isinstance(error, (MemoryError, torch.cuda.OutOfMemoryError)) or (
        isinstance(error, RuntimeError) and "out of memory" in str(error).lower()
    )


def _optimizer(model: nn.Module, recipe: dict[str, Any]) -> torch.optim.Optimizer:
    params, lr, wd = model.parameters(), recipe["lr"], recipe["weight_decay"]
    if recipe["optimizer"] == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=wd)
    if recipe["optimizer"] == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=wd)
    momentum = recipe["momentum"]
    return torch.optim.SGD(
        params, lr=lr, momentum=momentum, nesterov=bool(recipe["nesterov"]) and momentum > 0, weight_decay=wd
    )


def _loader(task: Task, dataset, recipe: dict[str, Any]):
    """A split for measuring: in order, in evaluation batches (on the device, for a set held there)."""
    if isinstance(dataset, MemorySet):
        return _Formatted(Batches(dataset, recipe["eval_batch_size"]), recipe)
    return _Formatted(DataLoader(dataset, batch_size=recipe["eval_batch_size"], num_workers=recipe["num_workers"],
                                 collate_fn=task.collate), recipe)


def _training_loader(task: Task, dataset, recipe: dict[str, Any], generator: torch.Generator):
    """The training split, shuffled by `generator`: the same batches whether the
    set is held on the device (Batches) or read item by item (DataLoader)."""
    if isinstance(dataset, MemorySet):
        return Batches(dataset, recipe["batch_size"], shuffle=True, generator=generator)
    return DataLoader(dataset, batch_size=recipe["batch_size"], shuffle=True, generator=generator,
                      num_workers=recipe["num_workers"], drop_last=False, collate_fn=task.collate)


class _Formatted:
    """A loader whose image batches come in the recipe's memory format (training.channels_last)."""

    def __init__(self, loader, recipe: dict[str, Any]) -> None:
        self.loader, self.channels_last = loader, bool(recipe["channels_last"])

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self):
        for batch in self.loader:
            yield _formatted(batch, self.channels_last)


def _formatted(batch, channels_last: bool):
    if not channels_last:
        return batch
    return tuple(t.contiguous(memory_format=torch.channels_last) if t.dim() == 4 else t for t in batch)


def _autocast(device: torch.device, recipe: dict[str, Any]):
    """training.precision bf16: forward passes under bfloat16 autocast (weights,
    gradients and the optimizer stay float32; bf16 needs no loss scaling)."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=recipe["precision"] == "bf16")


def held_on(splits, device: torch.device):
    """The splits, those held in memory moved to `device` once for the whole training."""
    moved = {name: getattr(splits, name).to(device) for name in ("train", "val", "test")
             if isinstance(getattr(splits, name), MemorySet)}
    return dataclasses.replace(splits, **moved) if moved else splits


CHECKPOINT_FORMAT = 1


def spec_fingerprint(spec: dict[str, Any], recipe: dict[str, Any]) -> str:
    """What determines a training's course, its recipe with every default filled: a
    checkpoint is used only by the same."""
    return fingerprint({**spec, "training": recipe})


class Checkpoint:
    """One training's checkpoint file, written atomically after each epoch."""

    def __init__(self, path: str | Path, fingerprint: str, log: Callable[[str], None], augments: bool = False) -> None:
        self.path, self.fingerprint, self.log = Path(path), fingerprint, log
        # A training with task.augment keeps its augmentation generator's state too.
        self.augments = augments

    def save(self, epoch: int, model, optimizer, scheduler, generator, rows: list[dict[str, Any]],
             augment_generator: torch.Generator | None = None) -> None:
        state = {
            "format": CHECKPOINT_FORMAT,
            "fingerprint": self.fingerprint,
            "epoch": epoch,
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict() if scheduler is not None else None,
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else [],
            "loader_rng": generator.get_state(),
            "augment_rng": augment_generator.get_state() if augment_generator is not None else None,
            "rows": [dict(row) for row in rows],
        }
        buffer = io.BytesIO()
        torch.save(state, buffer)
        atomic_write_bytes(self.path, buffer.getvalue())

    def load(self, model, epochs: int) -> dict[str, Any] | None:
        """The saved state if it fits this training, else None (with a log line why)."""
        if not self.path.is_file():
            return None
        try:
            state = torch.load(self.path, map_location="cpu", weights_only=True)
            problem = self._problem(state, model, epochs)
        except Exception as e:  # a truncated or damaged file fails in many ways; all mean "start over"
            problem = f"unreadable ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})"
        if problem:
            self.log(f"checkpoint {self.path} ignored: {problem}; training from epoch 1")
            return None
        return state

    def _problem(self, state: Any, model, epochs: int) -> str | None:
        if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
            return "not a checkpoint of this version"
        if state.get("fingerprint") != self.fingerprint:
            return "it belongs to another spec (architecture, seed, task or training recipe differ)"
        epoch = state.get("epoch")
        if not isinstance(epoch, int) or not 1 <= epoch <= epochs or len(state.get("rows") or []) != epoch:
            return f"its epoch {epoch!r} does not fit a training of {epochs} epochs"
        own = model.state_dict()
        saved = state.get("model")
        if not isinstance(saved, dict) or set(saved) != set(own) or any(
            not isinstance(saved[k], torch.Tensor) or saved[k].shape != own[k].shape for k in own
        ):
            return "its weights do not fit the network"
        for key in ("torch_rng", "loader_rng"):
            if not isinstance(state.get(key), torch.Tensor):
                return f"{key} is missing"
        if self.augments and not isinstance(state.get("augment_rng"), torch.Tensor):
            return "augment_rng is missing"
        return None

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)


def _resume(state, model, optimizer, scheduler, generator, epochs_out: list[dict[str, Any]],
            augment_generator: torch.Generator | None = None) -> int:
    """Put the training back where the checkpoint left it; the next epoch to run."""
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    if scheduler is not None and state["scheduler"] is not None:
        scheduler.load_state_dict(state["scheduler"])
    torch.set_rng_state(state["torch_rng"])
    if state["cuda_rng"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda_rng"])
    generator.set_state(state["loader_rng"])
    if augment_generator is not None:
        augment_generator.set_state(state["augment_rng"])
    epochs_out[:] = [dict(row) for row in state["rows"]]
    return state["epoch"] + 1


def _train(model, task: Task, splits, recipe, device, seed, log, epochs_out: list[dict[str, Any]],
           columns: tuple[str, ...], augment: Callable | None, checkpoint: Checkpoint | None = None,
           ) -> dict[str, float] | None:
    """Train for the recipe's epochs, `augment` (the task's augmenter, or None) on each
    batch; the last epoch's validation measures (None when a checkpoint left no epoch
    to run): the trained network's, measured once."""
    generator = torch.Generator().manual_seed(seed)
    loader = _training_loader(task, task.training_split(splits.train), recipe, generator)
    # Its own stream, so that the loader's draws (and results without augmentation) stay as they were.
    augment_generator = torch.Generator().manual_seed(int_seed(seed, 0, "augment")) if augment else None
    optimizer = _optimizer(model, recipe)
    total_steps = max(1, recipe["epochs"] * len(loader))
    scheduler = (
        torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total_steps)
        if recipe["schedule"] == "cosine"
        else None
    )
    first, val = 1, None
    state = checkpoint.load(model, recipe["epochs"]) if checkpoint is not None else None
    if state is not None:
        first = _resume(state, model, optimizer, scheduler, generator, epochs_out, augment_generator)
        log(f"resumed from epoch {first - 1} ({checkpoint.path})")
    for epoch in range(first, recipe["epochs"] + 1):
        start = time.perf_counter()
        model.train()
        loss_sum, sums = 0.0, {}
        for batch in loader:
            batch = task.to_device(batch, device)
            if augment is not None:
                batch = (augment(batch[0], augment_generator), *batch[1:])
            batch = _formatted(batch, recipe["channels_last"])
            optimizer.zero_grad(set_to_none=True)
            with _autocast(device, recipe):
                loss, stats = task.step(model, batch, recipe)
            value = loss.item()
            if not math.isfinite(value):
                raise _Diverged()
            loss.backward()
            if recipe["grad_clip"] > 0:
                nn.utils.clip_grad_norm_(model.parameters(), recipe["grad_clip"])
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
            loss_sum += value * stats["count"]
            for key, count in stats.items():
                sums[key] = sums.get(key, 0) + count
        with _autocast(device, recipe):
            val = task.evaluate(model, _loader(task, splits.val, recipe), device)
        if not math.isfinite(val["loss"]):
            raise _Diverged()
        measured = {**task.train_summary(loss_sum, sums), **{f"val_{k}": v for k, v in val.items()}}
        row = {"epoch": epoch, **{c: measured[c] for c in columns[1:-1]}, "seconds": time.perf_counter() - start}
        epochs_out.append(row)
        log(f"epoch {epoch}/{recipe['epochs']} "
            + " ".join(f"{c} {_shown(c, row[c])}" for c in columns[1:]))
        if checkpoint is not None:
            checkpoint.save(epoch, model, optimizer, scheduler, generator, epochs_out, augment_generator)
    return val


def _shown(column: str, value: float) -> str:
    """An epoch log value: accuracies and seconds with 2 decimals, losses with 4."""
    return f"{value:.4f}" if column.endswith("loss") else f"{value:.2f}"


def latency(model: nn.Module, shape: tuple[int, int, int], device: torch.device,
            cfg: dict[str, Any]) -> dict[str, Any]:
    """Milliseconds of one forward pass (the median of `repeats` after `warmup`
    untimed ones) of one image and of a batch on `device`, and of one image on the
    CPU with `cpu`; with the device's name and the load average before. The input
    comes from its own generator: the global random state is left as it was."""
    model.eval()
    out: dict[str, Any] = {
        "latency_device": torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({platform.machine()})",
        "latency_load": round(os.getloadavg()[0], 2),
    }
    runs = [("latency_ms", 1, device, model), ("latency_batch_ms", int(cfg["batch_size"]), device, model)]
    if cfg.get("cpu"):
        runs.append(("latency_cpu_ms", 1, torch.device("cpu"), model if device.type == "cpu" else copy.deepcopy(model).cpu()))
    with torch.no_grad():
        for key, batch, where, net in runs:
            x = torch.randn(batch, *shape, generator=torch.Generator().manual_seed(0)).to(where)
            times = []
            for i in range(int(cfg["warmup"]) + int(cfg["repeats"])):
                if where.type == "cuda":
                    torch.cuda.synchronize(where)
                start = time.perf_counter()
                net(x)
                if where.type == "cuda":
                    torch.cuda.synchronize(where)
                if i >= int(cfg["warmup"]):
                    times.append(time.perf_counter() - start)
            out[key] = round(1000 * statistics.median(times), 4)
    return out


def train(spec: dict[str, Any], evaluator: Evaluator, checkpoint_dir: str | Path | None = None,
          log: Callable[[str], None] = _stderr, out_dir: str | Path | None = None) -> Evaluation:
    """Train the spec's architecture with its recipe; metrics keyed as the evaluator's columns.

    `checkpoint_dir` is where this training keeps a checkpoint after each
    epoch (execution.checkpoints), None for none; it is deleted once training ends.
    `out_dir`, the candidate's eval folder, gets the task's pictures of the
    trained network (`Task.draw`); None draws none.
    """
    return _run(spec, evaluator, checkpoint_dir, log, out_dir=out_dir)[0]


def train_model(spec: dict[str, Any], evaluator: Evaluator, train_on: str = "train",
                log: Callable[[str], None] = _stderr) -> tuple[Evaluation, nn.Module | None, Any]:
    """One training as `train` does, and the trained network (on the CPU, in eval
    mode) with the splits it was trained from: the final model's."""
    result, model, splits = _run(spec, evaluator, None, log, train_on)
    return result, (model.cpu().eval() if model is not None else None), splits


def _run(spec: dict[str, Any], evaluator: Evaluator, checkpoint_dir: str | Path | None,
         log: Callable[[str], None], train_on: str = "train",
         out_dir: str | Path | None = None) -> tuple[Evaluation, nn.Module | None, Any]:
    task = evaluator.data_task()
    recipe = {**TRAINING_DEFAULTS, **(spec.get("training") or {})}
    torch.set_num_threads(int(recipe["threads"]))
    device = device_for(recipe["device"], log)
    space = make_space(spec["space"])
    genome = space.from_string(spec["arch"])
    splits = task.splits(int(spec["run_seed"]))
    held = held_on(splits, device)
    fitted = held
    if train_on == TRAIN_AND_VAL:
        both = (held.train.joined(held.val) if isinstance(held.train, MemorySet)
                else torch.utils.data.ConcatDataset([held.train, held.val]))
        fitted = dataclasses.replace(held, train=both)
    torch.manual_seed(int(spec["seed"]))
    model = task.model(space, genome, splits.info)
    metrics: dict[str, Any] = dict.fromkeys(evaluator.columns, math.nan)
    metrics.update(params=count_params(model), flops=count_flops(model, splits.info.input_shape), device=str(device))
    epochs: list[dict[str, Any]] = []
    log(f"{spec.get('candidate', 'candidate')} {spec['arch']} params {metrics['params']} flops {metrics['flops']} on {device}")
    augment = task.augmenter(fitted)
    saver = (Checkpoint(layout.checkpoint_in(checkpoint_dir), spec_fingerprint(spec, recipe), log,
                        augments=augment is not None)
             if checkpoint_dir is not None else None)
    start = time.perf_counter()
    try:
        model.to(device)
        if recipe["channels_last"]:
            model.to(memory_format=torch.channels_last)
        last_val = _train(model, task, fitted, recipe, device, int(spec["seed"]), log, epochs,
                          evaluator.epoch_columns, augment, saver)
        # Trained on the validation images too, the network's val metrics say nothing.
        measured = (("test", held.test),) if train_on == TRAIN_AND_VAL else (("val", held.val), ("test", held.test))
        for split, data in measured:
            if split == "val" and last_val is not None:
                result = last_val  # the last epoch measured this network on this split already
            else:
                with _autocast(device, recipe):
                    result = task.evaluate(model, _loader(task, data, recipe), device)
            for measure, value in result.items():
                if f"{split}_{measure}" in metrics:
                    metrics[f"{split}_{measure}"] = value
        if evaluator.cfg.get("latency") is not None:
            metrics.update(latency(model, splits.info.input_shape, device, evaluator.cfg["latency"]))
        if out_dir is not None:
            task.draw(model, splits, device, out_dir)
        metrics["status"] = "ok"
    except _Diverged:
        metrics["status"] = "diverged"
        log("loss is not finite: stopped, status diverged")
    except (RuntimeError, MemoryError) as error:
        if not _is_oom(error):
            raise
        metrics["status"] = "oom"
        log(f"out of memory: {error}")
    if metrics["status"] == "oom" and device.type == "cuda":
        # Out here the exception's traceback, which kept the training frames'
        # activations and optimizer state alive, is gone: the cache can empty.
        del model
        gc.collect()
        torch.cuda.empty_cache()
    if saver is not None:
        saver.remove()  # the training ended (ok, diverged or oom): metrics.json is the record
    for metric in task.metrics:  # train_* metrics are the last epoch's
        if metric.name.startswith("train_"):
            metrics[metric.name] = epochs[-1][metric.name] if epochs else math.nan
    metrics["train_seconds"] = round(time.perf_counter() - start, 3)
    metrics["epochs"] = len(epochs)
    return Evaluation(metrics, epochs), (None if metrics["status"] == "oom" and device.type == "cuda" else model), splits
