"""Evaluators by name (see nas/evaluators/base.py for what an evaluator offers).

`train` trains the network (its jobs import torch); `table` looks the
architecture up in a benchmark table (no torch, one job per generation);
`proxy` scores the untrained network by zero-cost proxies (one job per
generation).
Importing this, and building an evaluator, stays torch-free.
"""

from __future__ import annotations

from typing import Any, Mapping

from nas.evaluators.base import COST_COLUMNS, Evaluation, Evaluator, EvaluatorError, repeats_of
from nas.registry import lookup

EVALUATORS: dict[str, str] = {
    "train": "nas.evaluators.train:TrainEvaluator",
    "table": "nas.evaluators.table:TableEvaluator",
    "proxy": "nas.evaluators.proxy:ProxyEvaluator",
}


def evaluator_class(name: Any) -> type[Evaluator]:
    return lookup(EVALUATORS, "evaluator", name, EvaluatorError)


def evaluator_for(settings: Mapping[str, Any]) -> Evaluator:
    """The evaluator of a run or a candidate spec (both hold `evaluator` and `task`)."""
    cfg = settings["evaluator"]
    options = {k: v for k, v in cfg.items() if k != "name"}
    return evaluator_class(cfg.get("name"))(options, settings.get("task"), repeats_of(settings))


__all__ = ["COST_COLUMNS", "EVALUATORS", "Evaluation", "Evaluator", "EvaluatorError", "evaluator_class",
           "evaluator_for"]
