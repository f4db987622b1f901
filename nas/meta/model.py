"""The meta-model: which architectures should do well on a task?

Two parts, both fitted on the knowledge base (nas/meta/knowledge.py):

predictor  ridge regression of normalised score on an encoding of the
           architecture (and of the task), fitted on every (task,
           architecture) row. How rich the encoding is, how the rows are
           weighted (exp(score), which spends the fit on the good
           architectures, or uniformly, which noisy single trainings may
           prefer) and how strong the ridge is are chosen by
           leave-one-task-out cross-validation on the knowledge itself (5-fold
           over architectures when there is one task): mean Spearman
           correlation on the held-out task, the simpler candidate winning
           ties. The encodings, from simple to rich: one-hot genes; + one-hot
           genes x standardised task features; + one-hot pairs of genes
           (spaces of at most PAIR_GENES genes); + both. The choice and the
           whole cross-validation table are in model.json.
transfer   each known task is weighted by its similarity to the new one,
           w_t = exp(-d_t^2 / 2), d_t^2 the mean squared difference of the
           standardised task features (every w_t = 1 when no features are
           known). An architecture's score is its known normalised scores,
           weighted, shrunk towards the predictor's score for it by a prior
           worth PRIOR identical tasks:
               (sum_t w_t s_t + PRIOR * predicted) / (sum_t w_t + PRIOR)
           over the known tasks t that evaluated it; an architecture no known
           task evaluated scores its prediction. One formula for both cases:
           where every known task evaluated every architecture (a benchmark
           table) the observations dominate; where each architecture is known
           from one noisy training on one task, the prediction (what the
           architecture's genes did across all tasks) tempers it, and the
           similarity decides how far a task's observation counts.

Scorer.score(archs): that score. Scorer.top(k): the k best-scored among the
known architectures and the space's (all of it when it has at most
ENUMERABLE genomes, else SAMPLE random ones), so an architecture no
task evaluated but whose genes did well everywhere can be a seed.

Saved as model.json (space, feature statistics, the chosen encoding, the
predictor weights, the cross-validation table) next to the knowledge base's
knowledge.tsv and tasks.json: plain text, no pickle.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from nas import layout
from nas.io import ArtefactError, CorruptArtefact, read_json, write_json
from nas.meta.knowledge import CLIP, Knowledge, read_knowledge
from nas.predictors import RidgePredictor, spearman
from nas.ridge import PAIR_GENES, RidgeSystem
from nas.spaces import SearchSpace, SpaceError, make_space

# Encodings tried by the cross-validation, simplest first (ties go to the simpler).
ENCODINGS: tuple[tuple[str, ...], ...] = (("genes",), ("genes", "task"), ("genes", "pairs"),
                                         ("genes", "pairs", "task"))
RIDGES = (1000.0, 100.0, 10.0, 1.0, 0.1)  # strongest first, for the same reason
BLOCKS = ("genes", "pairs", "task")  # the full encoding, in column order
WEIGHTINGS = ("exp", "uniform")  # of the rows in the fit (_system)
CV_FOLDS = 5  # over architectures, when the knowledge has a single task
# Weight of the prediction in an architecture's score: one identical known task.
PRIOR = 1.0
SAMPLE = 5_000
FORMAT = 2


class MetaModel:
    def __init__(
        self, space: dict[str, Any], tasks: dict[str, dict[str, float]], scores: dict[str, dict[str, float]],
        names: Sequence[str], mean: Sequence[float], std: Sequence[float], weights: Sequence[float] | None,
        offset: float, encoding: Sequence[str] = ("genes",), weighting: str = "exp", ridge: float = 1.0,
        selection: Sequence[dict[str, Any]] = (),
    ) -> None:
        self.space_cfg = dict(space)
        self.space: SearchSpace = make_space(self.space_cfg)
        self.tasks = tasks
        self.scores = scores
        self.names = list(names)
        self.mean = np.asarray(mean, dtype=float)
        self.std = np.asarray(std, dtype=float)
        # The fit through the predictor door; None before one (no knowledge).
        self.predictor = None if weights is None else RidgePredictor.restored(weights, offset)
        self.encoding = tuple(encoding)
        self.weighting = weighting
        self.ridge = float(ridge)
        self.selection = list(selection)
        self._candidates: list[str] | None = None

    # -- building -------------------------------------------------------------------

    @classmethod
    def build(cls, knowledge: Knowledge, space: dict[str, Any]) -> "MetaModel":
        scores = knowledge.scores()
        names = sorted({k for f in knowledge.tasks.values() for k in f})
        table = np.array([[knowledge.tasks[t].get(k, np.nan) for k in names] for t in sorted(scores)]).reshape(
            len(scores), len(names))
        mean = np.array([np.nanmean(c) if np.isfinite(c).any() else 0.0 for c in table.T]) if names else np.zeros(0)
        std = np.array([np.nanstd(c) if np.isfinite(c).sum() > 1 else 0.0 for c in table.T]) if names else np.zeros(0)
        std = np.where(std > 1e-12, std, 1.0)
        model = cls(space, knowledge.tasks, scores, names, mean, std, None, 0.0)
        model._fit()
        return model

    def _fit(self) -> None:
        """Choose encoding, row weighting and ridge by cross-validation, then fit on everything."""
        rows = self._rows()
        if not rows:
            self.predictor = None
            return
        columns = self._columns()
        encodings = [e for e in ENCODINGS if all(b in columns for b in e)]
        folds = _folds(rows)
        self.selection = []
        best: tuple[float, tuple[str, ...], str, float] | None = None
        for weighting in WEIGHTINGS:
            systems = [(_system(train, weighting), test) for train, test in folds]
            for encoding in encodings:
                mask = self._mask(encoding)
                for ridge in RIDGES:
                    rhos = []
                    for system, test in systems:
                        weights, offset = system.solve(ridge, mask)
                        rhos.append(spearman(test.x[:, mask] @ weights + offset, test.y))
                    rho = float(np.nanmean(rhos)) if np.isfinite(rhos).any() else math.nan
                    self.selection.append({"encoding": list(encoding), "weighting": weighting, "ridge": ridge,
                                           "spearman": None if math.isnan(rho) else round(rho, 4)})
                    if best is None or (math.isfinite(rho) and (math.isnan(best[0]) or rho > best[0] + 1e-9)):
                        best = (rho, encoding, weighting, ridge)
        assert best is not None
        _, self.encoding, self.weighting, self.ridge = best
        joined = _Rows.join(rows)
        self.predictor = RidgePredictor(self.ridge).fit(joined.x[:, self._mask(self.encoding)], joined.y,
                                                        _row_weights(joined.y, self.weighting))

    def _rows(self) -> list["_Rows"]:
        """One block of (encoded architecture, score) rows per known task, every column encoded."""
        out = []
        for task, archs in sorted(self.scores.items()):
            genomes, y = self._parse(list(archs)), np.array(list(archs.values()), dtype=float)
            keep = [i for i, g in enumerate(genomes) if g is not None]
            if keep:
                x = self._encode([genomes[i] for i in keep], self.standardise(self.tasks.get(task, {})), BLOCKS)
                out.append(_Rows(x, y[keep]))
        return out

    def _columns(self) -> dict[str, np.ndarray]:
        """Column indices of each block of the full encoding."""
        cards = self.space.cardinalities()
        genes = int(sum(cards))
        pairs = sum(cards[i] * cards[j] for i in range(len(cards)) for j in range(i + 1, len(cards))) \
            if len(cards) <= PAIR_GENES else 0
        out = {"genes": np.arange(genes)}
        if pairs:
            out["pairs"] = np.arange(genes, genes + pairs)
        if self.names:
            out["task"] = np.arange(genes + pairs, genes + pairs + genes * len(self.names))
        return out

    def _mask(self, encoding: Sequence[str]) -> np.ndarray:
        """Columns of the full encoding (BLOCKS) that `encoding` keeps."""
        columns = self._columns()
        return np.concatenate([columns[b] for b in encoding])

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

    def _encode(self, genomes: Sequence[tuple[int, ...]], task: np.ndarray, blocks: Sequence[str]) -> np.ndarray:
        """One-hot genes, then (when asked) pairs of genes, then genes x task features."""
        cards = self.space.cardinalities()
        unary = self.space.encode(genomes, "onehot")
        parts = [unary]
        if "pairs" in blocks and len(cards) <= PAIR_GENES:
            parts.append(self.space.encode(genomes, "pairs"))
        if "task" in blocks and len(task):
            parts.append((unary[:, :, None] * task[None, None, :]).reshape(len(genomes), -1))
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
        if keep and self.predictor is not None:
            x = self._encode([genomes[i] for i in keep], self.standardise(features), self.encoding)
            out[keep] = self.predictor.predict(x)[0]
        return out

    def candidates(self) -> list[str]:
        """The space's architectures a ranking looks at besides the known ones:
        all of them when the space is enumerable (SearchSpace.all_genomes), else SAMPLE random ones."""
        if self._candidates is None:
            genomes = self.space.all_genomes()
            if genomes is None:
                rng = np.random.default_rng(0)
                genomes = [self.space.sample(rng) for _ in range(SAMPLE)]
            self._candidates = sorted({self.space.to_string(self.space.canonical(tuple(g))) for g in genomes})
        return self._candidates

    def scorer(self, features: dict[str, float], exclude: Sequence[str] = ()) -> "Scorer":
        weights = self.similarity(features, exclude)
        total: dict[str, float] = {}
        mass: dict[str, float] = {}
        for task, w in weights.items():
            for arch, s in self.scores[task].items():
                total[arch] = total.get(arch, 0.0) + w * s
                mass[arch] = mass.get(arch, 0.0) + w
        return Scorer(self, dict(features), total, mass, weights)

    # -- files ------------------------------------------------------------------------

    def save(self, folder: str | Path) -> None:
        write_json(layout.meta_model(folder), {
            "format": FORMAT,
            "space": self.space_cfg,
            "features": self.names,
            "feature_mean": [round(float(v), 8) for v in self.mean],
            "feature_std": [round(float(v), 8) for v in self.std],
            "encoding": list(self.encoding),
            "weighting": self.weighting,
            "ridge": self.ridge,
            "offset": 0.0 if self.predictor is None else self.predictor.offset,
            "weights": None if self.predictor is None else [round(float(v), 8) for v in self.predictor.coefficients],
            "selection": self.selection,
        })

    @classmethod
    def load(cls, folder: str | Path) -> "MetaModel":
        folder = Path(folder)
        path = Path(layout.meta_model(folder))
        if not path.is_file():
            raise ArtefactError(f"{path}: no meta-model there; build it first (python -m nas meta build, "
                                "or snakemake results/meta/model.json)")
        d = read_json(path)
        keys = ("format", "space", "features", "feature_mean", "feature_std", "encoding", "weighting", "ridge",
                "offset", "weights", "selection")
        if not isinstance(d, dict) or any(k not in d for k in keys) or d["format"] != FORMAT:
            raise CorruptArtefact(path, f"not a meta-model of format {FORMAT}")
        tasks, scores = read_knowledge(folder)
        return cls(d["space"], tasks, scores, d["features"], d["feature_mean"], d["feature_std"], d["weights"],
                   float(d["offset"]), d["encoding"], d["weighting"], float(d["ridge"]), d["selection"])


# -- fitting ------------------------------------------------------------------------------


@dataclass
class _Rows:
    """Encoded rows (all columns) and their normalised scores."""

    x: np.ndarray
    y: np.ndarray

    @staticmethod
    def join(parts: Sequence["_Rows"]) -> "_Rows":
        return _Rows(np.concatenate([p.x for p in parts]), np.concatenate([p.y for p in parts]))


def _folds(rows: list[_Rows]) -> list[tuple[_Rows, _Rows]]:
    """Leave one task out; with one task, CV_FOLDS folds over its architectures."""
    if len(rows) > 1:
        return [(_Rows.join(rows[:i] + rows[i + 1:]), rows[i]) for i in range(len(rows))]
    only = rows[0]
    fold = np.random.default_rng(0).permutation(len(only.y)) % CV_FOLDS
    return [(_Rows(only.x[fold != k], only.y[fold != k]), _Rows(only.x[fold == k], only.y[fold == k]))
            for k in range(CV_FOLDS) if (fold == k).any() and (fold != k).any()]


def _system(rows: _Rows, weighting: str) -> RidgeSystem:
    """The normal equations of the fit, built once for all columns so that every
    encoding (a column subset) and ridge is a cheap solve.

    Weighting `exp`: each row weighs exp(score), so the fit is spent on the good
    architectures, whose order a search needs, not on the many poor ones; this
    is what makes the top of a dense benchmark table's prediction good.
    `uniform`: every row alike, which noisy scores (one short training each) may
    prefer, since exp(score) gives the luckiest trainings the most say."""
    return RidgeSystem(rows.x, rows.y, _row_weights(rows.y, weighting))


def _row_weights(y: np.ndarray, weighting: str) -> np.ndarray | None:
    return np.exp(y) if weighting == "exp" else None


@lru_cache(maxsize=4)
def _load_cached(folder: str, stamp: int) -> MetaModel:
    return MetaModel.load(folder)


def load_model(folder: str | Path) -> MetaModel:
    """The model in `folder`, loaded once per process while model.json is unchanged."""
    path = Path(layout.meta_model(folder))
    return _load_cached(str(Path(folder).resolve()), path.stat().st_mtime_ns if path.exists() else 0)


@dataclass
class Scorer:
    """The meta-model's view of one target task: known scores, weighted by similarity."""

    model: MetaModel
    features: dict[str, float]
    total: dict[str, float]  # arch -> sum_t w_t s_t over the known tasks that evaluated it
    mass: dict[str, float]  # arch -> sum_t w_t
    weights: dict[str, float]
    _ranked: list[str] | None = field(default=None, repr=False)

    def known(self, arch: str) -> bool:
        return self.mass.get(arch, 0.0) > 0

    def score(self, archs: Sequence[str]) -> np.ndarray:
        predicted = self.model.predict(self.features, archs)
        total = np.array([self.total.get(a, 0.0) for a in archs])
        mass = np.array([self.mass.get(a, 0.0) for a in archs])
        return (total + PRIOR * predicted) / (mass + PRIOR)

    def ranked(self) -> list[str]:
        """Known and candidate architectures, best score first (ties: by name)."""
        if self._ranked is None:
            archs = sorted(set(self.model.candidates()) | {a for a in self.mass if self.known(a)})
            scores = self.score(archs)
            order = sorted(range(len(archs)), key=lambda i: (-scores[i], archs[i]))
            self._ranked = [archs[i] for i in order]
        return self._ranked

    def top(self, k: int) -> list[str]:
        return self.ranked()[:k]
