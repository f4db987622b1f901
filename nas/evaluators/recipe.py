"""The training recipe's defaults, kept torch-free so configs can be resolved
(and run.yaml written) without importing torch."""

from __future__ import annotations

# The choices of the recipe (config/schema.yaml's enums; tests/test_schema.py keeps them equal).
OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("cosine", "constant")
DEVICES = ("auto", "cpu", "cuda")

TRAINING_DEFAULTS = {
    "epochs": 10,
    "batch_size": 64,
    "eval_batch_size": 512,
    "optimizer": "sgd",
    "lr": 0.05,
    "momentum": 0.9,
    "nesterov": True,
    "weight_decay": 5e-4,
    "schedule": "cosine",
    "grad_clip": 5.0,
    "label_smoothing": 0.0,
    # One thread per job by default: CPU results are then bit-identical run to
    # run, and parallel jobs do not fight over cores.
    "threads": 1,
    "device": "auto",
    "num_workers": 0,
}
