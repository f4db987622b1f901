"""Warm start of a run's strategy from a meta-model (the run's `warm_start` section).

    warm_start:
      model: results/meta   folder of the meta-model (python -m nas meta build)
      top: 10               seed architectures: the meta-model's best for this task
      pretrain_steps: 100   reinforce: imitation steps on the seeds before the first epoch

The meta-model also scores architectures: `screen: {by: meta, keep: 0.25}` has
each later generation propose 4 x candidates and keep the best-scored quarter
(nas.runner builds that screen from `WarmStart.score`).

The strategy gets a WarmStart (nas.strategies.base): ga, rea, ls and random
evaluate the seeds first in generation 0; reinforce (generate) pre-trains its
policy to imitate them. The task's features come from features_for(run).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from nas import layout
from nas.meta.features import features_for
from nas.meta.model import Scorer, load_model
from nas.spaces import SpaceError
from nas.strategies.base import Strategy, WarmStart

@lru_cache(maxsize=16)
def _scorer(folder: str, stamp: int, features: tuple[tuple[str, float], ...]) -> Scorer:
    return load_model(folder).scorer(dict(features))


def _stamp(folder: str) -> int:
    """When model.json last changed: a rebuilt model is not served from the cache."""
    path = Path(layout.meta_model(folder))
    return path.stat().st_mtime_ns if path.exists() else 0


def warm_start_for(strategy: Strategy, run: dict[str, Any]) -> WarmStart:
    cfg = run["warm_start"]  # defaults filled by the config schema
    features = tuple(sorted(features_for(run).items()))
    scorer = _scorer(str(cfg["model"]), _stamp(str(cfg["model"])), features)
    space = strategy.space
    seeds = []
    # Down the ranking until `top` are found: some may not be architectures of this run's space.
    for arch in scorer.ranked():
        try:
            genome = space.from_string(arch)
        except SpaceError:
            continue
        if space.is_valid(genome) and space.canonical(genome) not in seeds:
            seeds.append(space.canonical(genome))
        if len(seeds) == cfg["top"]:
            break

    def score(genomes: Sequence[tuple[int, ...]]) -> np.ndarray:
        return scorer.score([space.to_string(g) for g in genomes])

    return WarmStart(tuple(seeds), score, int(cfg["pretrain_steps"]))


def apply(strategy: Strategy, run: dict[str, Any]) -> Strategy:
    """The strategy, warm-started when the run has a `warm_start` section."""
    if run.get("warm_start"):
        strategy.warm = warm_start_for(strategy, run)
    return strategy
