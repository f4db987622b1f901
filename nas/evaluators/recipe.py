"""The training recipe's defaults, kept torch-free so configs can be resolved
(and run.yaml written) without importing torch."""

from __future__ import annotations

# The choices of the recipe (config/schema.yaml's enums; tests/test_schema.py keeps them equal).
OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("cosine", "constant")
DEVICES = ("auto", "cpu", "cuda")
# training.precision: float32 throughout, or forward passes under bfloat16 autocast.
PRECISIONS = ("fp32", "bf16")
# What a final model trains on (final.train_on): the training split, or the
# training and validation splits together (then only test metrics mean anything).
TRAIN_AND_VAL = "train+val"
TRAIN_ON = ("train", TRAIN_AND_VAL)

TRAINING_DEFAULTS = {
    "epochs": 10,
    # Trainings per candidate, each with its own seed; the metrics are their mean
    # (nas/evaluators/repeats.py). 1: one training, the columns of before.
    "repeats": 1,
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
    # Fixed values, never the device's best: a run.yaml means the same on any machine.
    "precision": "fp32",
    "channels_last": False,
}
