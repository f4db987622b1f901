"""The meta-model: which architectures should do well on a task?

Two parts, both fitted on the knowledge base (nas/meta/knowledge.py):

transfer   each known task is weighted by its similarity to the new one,
           w_t = exp(-d_t^2 / 2), d_t^2 the mean squared difference of the
           standardised task features (every w_t = 1 when no features are
           known); an architecture's transfer score is the weighted mean of
           its normalised scores over the known tasks that evaluated it,
           shrunk towards 0 (the average architecture) by a prior of weight
           PRIOR: sum_t w_t s_t / (sum_t w_t + PRIOR). Where every known task
           evaluated every architecture (a benchmark table) this keeps the
           order; where each architecture is known from one task only (runs of
           a few dozen trainings each) it is what lets the similarity count,
           since a plain weighted mean over one task is that task's score.
predictor  ridge regression of normalised score on (one-hot genes, one-hot
           pairs of genes for spaces of at most PAIR_GENES genes, one-hot genes
           x standardised task features), fitted on every (task, architecture)
           row with weight exp(score), so that it orders the good
           architectures well rather than the poor ones. It scores
           architectures no related task evaluated.

Scorer.score(archs): the transfer score where some known task evaluated the
architecture, the predictor's otherwise (both in normalised-score units).
Scorer.top(k): the k best known architectures.

Saved as model.json (space, feature statistics, predictor weights) next to
the knowledge base's knowledge.tsv and tasks.json: plain text, no pickle.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from nas.io import ArtefactError, CorruptArtefact, read_json, write_json
from nas.meta.knowledge import CLIP, Knowledge, read_knowledge
from nas.spaces import SearchSpace, SpaceError, make_space

PAIR_GENES = 8
RIDGE = 1.0
# Weight of the prior (score 0) in the transfer score: one identical known task.
PRIOR = 1.0
FORMAT = 1


class MetaModel:
    def __init__(
        self, space: dict[str, Any], tasks: dict[str, dict[str, float]], scores: dict[str, dict[str, float]],
        names: Sequence[str], mean: Sequence[float], std: Sequence[float], weights: Sequence[float] | None,
        offset: float,
    ) -> None:
        self.space_cfg = dict(space)
        self.space: SearchSpace = make_space(self.space_cfg)
        self.tasks = tasks
        self.scores = scores
        self.names = list(names)
        self.mean = np.asarray(mean, dtype=float)
        self.std = np.asarray(std, dtype=float)
        self.weights = None if weights is None else np.asarray(weights, dtype=float)
        self.offset = offset

    # -- building -------------------------------------------------------------------

    @classmethod
    def build(cls, knowledge: Knowledge, space: dict[str, Any], ridge: float = RIDGE) -> "MetaModel":
        scores = knowledge.scores()
        names = sorted({k for f in knowledge.tasks.values() for k in f})
        table = np.array([[knowledge.tasks[t].get(k, np.nan) for k in names] for t in sorted(scores)]).reshape(
            len(scores), len(names))
        mean = np.array([np.nanmean(c) if np.isfinite(c).any() else 0.0 for c in table.T]) if names else np.zeros(0)
        std = np.array([np.nanstd(c) if np.isfinite(c).sum() > 1 else 0.0 for c in table.T]) if names else np.zeros(0)
        std = np.where(std > 1e-12, std, 1.0)
        model = cls(space, knowledge.tasks, scores, names, mean, std, None, 0.0)
        model._fit(ridge)
        return model

    def _fit(self, ridge: float) -> None:
        x_parts, y_parts = [], []
        for task, archs in sorted(self.scores.items()):
            genomes, y = self._parse(list(archs)), np.array(list(archs.values()))
            keep = [i for i, g in enumerate(genomes) if g is not None]
            if not keep:
                continue
            x_parts.append(self._encode([genomes[i] for i in keep], self.standardise(self.tasks.get(task, {}))))
            y_parts.append(y[keep])
        if not x_parts:
            self.weights, self.offset = None, 0.0
            return
        x, y = np.concatenate(x_parts), np.concatenate(y_parts)
        # Weighted least squares, weight exp(score): the fit is spent on the good
        # architectures, whose order a search needs, not on the many poor ones.
        w = np.exp(y)
        self.offset = float(np.average(y, weights=w))
        xw = x * w[:, None]
        self.weights = np.linalg.solve(xw.T @ x + ridge * np.eye(x.shape[1]), xw.T @ (y - self.offset))

    # -- encoding ---------------------------------------------------------------------

    def standardise(self, features: dict[str, float]) -> np.ndarray:
        """Task features in the model's units; a feature it lacks counts as the known tasks' mean."""
        raw = np.array([features.get(k, m) for k, m in zip(self.names, self.mean)], dtype=float)
        return np.clip((raw - self.mean) / self.std, -CLIP, CLIP)

    def _parse(self, archs: Sequence[str]) -> list[tuple[int, ...] | None]:
        out = []
        for arch in archs:
            try:
                genome = self.space.from_string(arch)
                out.append(genome if self.space.is_valid(genome) else None)
            except SpaceError:
                out.append(None)
        return out

    def _encode(self, genomes: Sequence[tuple[int, ...]], task: np.ndarray) -> np.ndarray:
        cards = self.space.cardinalities()
        offsets = np.concatenate([[0], np.cumsum(cards)[:-1]]).astype(int)
        g = np.asarray(genomes, dtype=int).reshape(len(genomes), len(cards))
        unary = np.zeros((len(g), int(sum(cards))))
        unary[np.arange(len(g))[:, None], offsets + g] = 1.0
        parts = [unary]
        if len(cards) <= PAIR_GENES:
            for i in range(len(cards)):
                for j in range(i + 1, len(cards)):
                    pair = np.zeros((len(g), cards[i] * cards[j]))
                    pair[np.arange(len(g)), g[:, i] * cards[j] + g[:, j]] = 1.0
                    parts.append(pair)
        if len(task):
            parts.append((unary[:, :, None] * task[None, None, :]).reshape(len(g), -1))
        return np.concatenate(parts, 1)

    # -- using ------------------------------------------------------------------------

    def similarity(self, features: dict[str, float], exclude: Sequence[str] = ()) -> dict[str, float]:
        """Weight of each known task for a task with these features."""
        target = self.standardise(features)
        out = {}
        for task in sorted(self.scores):
            if task in exclude:
                continue
            if not self.names:
                out[task] = 1.0
                continue
            d2 = float(np.mean((self.standardise(self.tasks.get(task, {})) - target) ** 2))
            out[task] = math.exp(-d2 / 2)
        return out

    def predict(self, features: dict[str, float], archs: Sequence[str]) -> np.ndarray:
        """Predicted normalised score; -CLIP for an architecture outside the model's space."""
        genomes = self._parse(archs)
        out = np.full(len(archs), -CLIP)
        keep = [i for i, g in enumerate(genomes) if g is not None]
        if keep and self.weights is not None:
            x = self._encode([genomes[i] for i in keep], self.standardise(features))
            out[keep] = x @ self.weights + self.offset
        return out

    def scorer(self, features: dict[str, float], exclude: Sequence[str] = ()) -> "Scorer":
        weights = self.similarity(features, exclude)
        total: dict[str, float] = {}
        mass: dict[str, float] = {}
        for task, w in weights.items():
            for arch, s in self.scores[task].items():
                total[arch] = total.get(arch, 0.0) + w * s
                mass[arch] = mass.get(arch, 0.0) + w
        transfer = {a: total[a] / (mass[a] + PRIOR) for a in total if mass[a] > 0}
        return Scorer(self, dict(features), transfer, weights)

    # -- files ------------------------------------------------------------------------

    def save(self, folder: str | Path) -> None:
        write_json(Path(folder) / "model.json", {
            "format": FORMAT,
            "space": self.space_cfg,
            "features": self.names,
            "feature_mean": [round(float(v), 8) for v in self.mean],
            "feature_std": [round(float(v), 8) for v in self.std],
            "offset": self.offset,
            "weights": None if self.weights is None else [round(float(v), 8) for v in self.weights],
        })

    @classmethod
    def load(cls, folder: str | Path) -> "MetaModel":
        folder = Path(folder)
        path = folder / "model.json"
        if not path.is_file():
            raise ArtefactError(f"{path}: no meta-model there; build it first (python -m nas meta build, "
                                "or snakemake results/meta/model.json)")
        d = read_json(path)
        keys = ("format", "space", "features", "feature_mean", "feature_std", "offset", "weights")
        if not isinstance(d, dict) or any(k not in d for k in keys) or d["format"] != FORMAT:
            raise CorruptArtefact(path, f"not a meta-model (format {FORMAT})")
        tasks, scores = read_knowledge(folder)
        return cls(d["space"], tasks, scores, d["features"], d["feature_mean"], d["feature_std"], d["weights"],
                   float(d["offset"]))


@lru_cache(maxsize=4)
def _load_cached(folder: str, stamp: int) -> MetaModel:
    return MetaModel.load(folder)


def load_model(folder: str | Path) -> MetaModel:
    """The model in `folder`, loaded once per process while model.json is unchanged."""
    path = Path(folder) / "model.json"
    return _load_cached(str(Path(folder).resolve()), path.stat().st_mtime_ns if path.exists() else 0)


@dataclass
class Scorer:
    """The meta-model's view of one target task."""

    model: MetaModel
    features: dict[str, float]
    transfer: dict[str, float]
    weights: dict[str, float]
    _ranked: list[str] | None = None

    def score(self, archs: Sequence[str]) -> np.ndarray:
        out = np.array([self.transfer.get(a, np.nan) for a in archs], dtype=float)
        unknown = np.isnan(out)
        if unknown.any():
            out[unknown] = self.model.predict(self.features, [a for a, u in zip(archs, unknown) if u])
        return out

    def ranked(self) -> list[str]:
        """The known architectures, best transfer score first (ties: by name)."""
        if self._ranked is None:
            self._ranked = [a for a, _ in sorted(self.transfer.items(), key=lambda item: (-item[1], item[0]))]
        return self._ranked

    def top(self, k: int) -> list[str]:
        return self.ranked()[:k]
