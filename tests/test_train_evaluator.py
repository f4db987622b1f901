"""Real training of one candidate: metrics, determinism, divergence, out of memory."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from nas.evaluators import evaluator_for, training
from nas.evaluators.flops import count_flops, count_params
from tests.helpers import train as evaluate

# The columns of today's metrics.json, in order: classification's, then the cost and bookkeeping ones.
METRIC_KEYS = ("status", "val_acc", "test_acc", "val_loss", "train_loss", "params", "flops", "train_seconds",
               "epochs", "device")

ARCH = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"


def spec(**training):
    return {
        "candidate": "c00",
        "arch": ARCH,
        "space": {"name": "nb201", "channels": 4, "cells_per_stage": 1},
        "task": {"name": "digits", "train_size": 100, "val_size": 100},
        "training": {"epochs": 2, "batch_size": 32, **training},
        "evaluator": {"name": "train"},
        "seed": 7,
        "run_seed": 0,
    }


def test_metrics_epochs_and_log_lines():
    lines = []
    result = evaluate(spec(), log=lines.append)
    m = result.metrics
    assert list(m) == list(METRIC_KEYS) == list(evaluator_for(spec()).columns)
    assert m["status"] == "ok" and m["epochs"] == 2 and m["device"] == "cpu"
    assert 0 <= m["val_acc"] <= 100 and 0 <= m["test_acc"] <= 100
    assert m["params"] > 0 and m["flops"] > m["params"] and m["train_seconds"] > 0
    assert [e["epoch"] for e in result.epochs] == [1, 2]
    assert result.epochs[-1]["val_acc"] == m["val_acc"] and m["train_loss"] == result.epochs[-1]["train_loss"]
    epoch_lines = [line for line in lines if line.startswith("epoch ")]
    assert len(epoch_lines) == 2 and "val_acc" in epoch_lines[0] and "seconds" in epoch_lines[0]


def test_same_spec_gives_identical_metrics_on_cpu():
    a, b = evaluate(spec(), log=lambda _: None), evaluate(spec(), log=lambda _: None)
    drop = lambda m: {k: v for k, v in m.items() if k != "train_seconds"}  # noqa: E731
    assert drop(a.metrics) == drop(b.metrics)
    other = {**spec(), "seed": 8}
    assert evaluate(other, log=lambda _: None).metrics["train_loss"] != a.metrics["train_loss"]


@pytest.mark.parametrize("optimizer, schedule", [("adam", "constant"), ("adamw", "cosine"), ("sgd", "constant")])
def test_optimizers_and_schedules_train(optimizer, schedule):
    lr = 0.01 if optimizer != "sgd" else 0.05
    m = evaluate(spec(optimizer=optimizer, schedule=schedule, lr=lr, epochs=1), log=lambda _: None).metrics
    assert m["status"] == "ok" and math.isfinite(m["train_loss"])


def test_divergence_is_a_status_not_a_crash():
    lines = []
    m = evaluate(spec(lr=1e12, grad_clip=0, momentum=0.0, weight_decay=0.0, epochs=3), log=lines.append).metrics
    assert m["status"] == "diverged"
    assert math.isnan(m["val_acc"]) and math.isnan(m["test_acc"])
    assert m["epochs"] < 3 and any("diverged" in line for line in lines)


@pytest.mark.parametrize(
    "error",
    [
        torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB"),
        RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory: out of memory"),
        MemoryError(),
    ],
)
def test_out_of_memory_is_a_status(monkeypatch, error):
    def boom(*args, **kwargs):
        raise error

    monkeypatch.setattr(training, "_train", boom)
    m = evaluate(spec(), log=lambda _: None).metrics
    assert m["status"] == "oom" and math.isnan(m["val_acc"]) and m["epochs"] == 0


def test_other_errors_propagate(monkeypatch):
    def bug(*args, **kwargs):
        raise RuntimeError("mat1 and mat2 shapes cannot be multiplied")

    monkeypatch.setattr(training, "_train", bug)
    with pytest.raises(RuntimeError, match="shapes"):
        evaluate(spec(), log=lambda _: None)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
def test_asking_for_cuda_without_a_gpu_says_so():
    with pytest.raises(ValueError, match="training.device: cuda"):
        evaluate(spec(device="cuda"), log=lambda _: None)


def test_count_flops_and_params_by_hand():
    conv = nn.Conv2d(3, 8, kernel_size=3, padding=1, bias=False)
    assert count_flops(conv, (3, 10, 10)) == 8 * 10 * 10 * 3 * 3 * 3
    assert count_params(conv) == 8 * 3 * 3 * 3
    head = nn.Sequential(nn.Flatten(), nn.Linear(12, 5))
    assert count_flops(head, (3, 2, 2)) == 12 * 5 and count_params(head) == 12 * 5 + 5
    grouped = nn.Conv2d(4, 4, kernel_size=1, groups=4)
    assert count_flops(grouped, (4, 3, 3)) == 4 * 3 * 3
