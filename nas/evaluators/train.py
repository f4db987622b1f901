"""Real training: build the candidate's network, train it, measure it.

Used by `python -m nas train` (one process per candidate in the workflow).
A candidate whose loss becomes NaN/inf ends with status `diverged`, one that
runs out of memory with `oom`; both are results, not crashes. Anything else
that goes wrong is a bug and propagates.
"""

from __future__ import annotations

import gc
import math
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from torch import nn
from torch.utils.data import DataLoader

from nas.evaluators import METRIC_KEYS
from nas.evaluators.flops import count_flops, count_params
from nas.evaluators.recipe import TRAINING_DEFAULTS
from nas.spaces import make_space
from nas.tasks import load


@dataclass
class Evaluation:
    metrics: dict[str, Any]
    epochs: list[dict[str, Any]] = field(default_factory=list)


class _Diverged(Exception):
    pass


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _device(choice: str) -> torch.device:
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


def _measure(model: nn.Module, dataset, recipe: dict[str, Any], device: torch.device) -> tuple[float, float]:
    """(mean loss, accuracy %) of the model on a dataset."""
    loader = DataLoader(dataset, batch_size=recipe["eval_batch_size"], num_workers=recipe["num_workers"])
    model.eval()
    loss_sum, correct, count = 0.0, 0, 0
    with torch.no_grad():
        for x, y in loader:
            x, y = x.to(device), y.to(device)
            logits = model(x)
            loss_sum += nn.functional.cross_entropy(logits, y, reduction="sum").item()
            correct += (logits.argmax(1) == y).sum().item()
            count += len(y)
    return loss_sum / max(count, 1), 100.0 * correct / max(count, 1)


def _train(model, splits, recipe, device, seed, log, epochs_out: list[dict[str, Any]]) -> None:
    generator = torch.Generator().manual_seed(seed)
    # One DataLoader path for every task: on the in-memory digits its overhead
    # measured about 1 ms an epoch, nothing next to the training steps.
    loader = DataLoader(
        splits.train, batch_size=recipe["batch_size"], shuffle=True, generator=generator,
        num_workers=recipe["num_workers"], drop_last=False,
    )
    optimizer = _optimizer(model, recipe)
    total_steps = max(1, recipe["epochs"] * len(loader))
    scheduler = (
        torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total_steps)
        if recipe["schedule"] == "cosine"
        else None
    )
    criterion = nn.CrossEntropyLoss(label_smoothing=recipe["label_smoothing"])
    for epoch in range(1, recipe["epochs"] + 1):
        start = time.perf_counter()
        model.train()
        loss_sum, correct, count = 0.0, 0, 0
        for x, y in loader:
            x, y = x.to(device), y.to(device)
            optimizer.zero_grad(set_to_none=True)
            logits = model(x)
            loss = criterion(logits, y)
            value = loss.item()
            if not math.isfinite(value):
                raise _Diverged()
            loss.backward()
            if recipe["grad_clip"] > 0:
                nn.utils.clip_grad_norm_(model.parameters(), recipe["grad_clip"])
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
            loss_sum += value * len(y)
            correct += (logits.argmax(1) == y).sum().item()
            count += len(y)
        val_loss, val_acc = _measure(model, splits.val, recipe, device)
        if not math.isfinite(val_loss):
            raise _Diverged()
        row = {
            "epoch": epoch,
            "train_loss": loss_sum / count,
            "train_acc": 100.0 * correct / count,
            "val_loss": val_loss,
            "val_acc": val_acc,
            "seconds": time.perf_counter() - start,
        }
        epochs_out.append(row)
        log(
            f"epoch {epoch}/{recipe['epochs']} train_loss {row['train_loss']:.4f} train_acc {row['train_acc']:.2f} "
            f"val_loss {val_loss:.4f} val_acc {val_acc:.2f} seconds {row['seconds']:.2f}"
        )


def evaluate(spec: dict[str, Any], log: Callable[[str], None] = _stderr) -> Evaluation:
    """Train the spec's architecture with its recipe; metrics keyed as METRIC_KEYS."""
    recipe = {**TRAINING_DEFAULTS, **(spec.get("training") or {})}
    torch.set_num_threads(int(recipe["threads"]))
    device = _device(recipe["device"])
    space = make_space(spec["space"])
    genome = space.from_string(spec["arch"])
    splits = load(spec["task"], int(spec["run_seed"]))
    torch.manual_seed(int(spec["seed"]))
    model = space.build(genome, splits.info.input_shape, splits.info.num_classes)
    metrics = dict.fromkeys(METRIC_KEYS, math.nan)
    metrics.update(params=count_params(model), flops=count_flops(model, splits.info.input_shape), device=str(device))
    epochs: list[dict[str, Any]] = []
    log(f"{spec.get('candidate', 'candidate')} {spec['arch']} params {metrics['params']} flops {metrics['flops']} on {device}")
    start = time.perf_counter()
    try:
        model.to(device)
        _train(model, splits, recipe, device, int(spec["seed"]), log, epochs)
        metrics["val_loss"], metrics["val_acc"] = _measure(model, splits.val, recipe, device)
        _, metrics["test_acc"] = _measure(model, splits.test, recipe, device)
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
    metrics["train_loss"] = epochs[-1]["train_loss"] if epochs else math.nan
    metrics["train_seconds"] = round(time.perf_counter() - start, 3)
    metrics["epochs"] = len(epochs)
    return Evaluation(metrics, epochs)
