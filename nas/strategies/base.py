"""The contract between a search strategy and whoever evaluates its proposals.

A strategy turns (state, history, rng) into proposals and (state, results)
into a new state. State is a plain JSON-able dict, so the workflow can keep it
in a file between generations and the in-process loop can keep it in memory:
both call the same methods, so there is one implementation of each algorithm.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from pathlib import Path
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from nas import layout
from nas.io import CorruptArtefact, read_json, write_json
from nas.objectives import Constraint, rank_and_crowding
from nas.registry import constructor_options
from nas.spaces.base import Genome, SearchSpace
from nas.strategies.operators import nsga2_select

# How many draws one proposal slot may spend looking for a valid architecture
# that is not yet evaluated, before it falls back to random sampling.
MAX_TRIES = 100


class StrategyError(ValueError):
    """A strategy that cannot go on (bad options, an exhausted space)."""


@dataclass(frozen=True)
class Evaluated:
    """One evaluated candidate as a strategy sees it."""

    key: str  # unique in the run, e.g. "gen_002/c01"
    arch: str
    genome: Genome
    # The primary objective's signed value (larger is better, nas.objectives);
    # -inf when the candidate failed. Always values[0].
    fitness: float
    # What the strategy recorded when proposing it (Proposal.trace); only the
    # results handed to update() carry it, history read back from tables not.
    trace: Any = None
    # Every objective's signed value, the primary first (default: fitness alone).
    values: tuple[float, ...] = ()
    # How far the candidate breaks the run's constraints; 0 when feasible.
    violation: float = 0.0

    def __post_init__(self) -> None:
        if not self.values:
            object.__setattr__(self, "values", (self.fitness,))
        elif self.values[0] != self.fitness and not (math.isnan(self.fitness) and math.isnan(self.values[0])):
            raise ValueError(f"{self.key}: fitness {self.fitness} is not values[0] {self.values[0]}")

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "key": self.key,
            "arch": self.arch,
            "genome": list(self.genome),
            "fitness": _json_value(self.fitness),
        }
        # A single-objective state keeps its first form: fitness says it all.
        if len(self.values) > 1:
            out["values"] = [_json_value(v) for v in self.values]
        if self.violation:
            # JSON has no infinity: a constrained metric without a value (infinitely far) is written "inf".
            out["violation"] = self.violation if math.isfinite(self.violation) else "inf"
        return out

    @staticmethod
    def from_json(d: dict[str, Any]) -> "Evaluated":
        values = tuple(_value(v) for v in d.get("values") or [d["fitness"]])
        return Evaluated(d["key"], d["arch"], tuple(d["genome"]), _value(d["fitness"]), None, values,
                         float(d.get("violation") or 0.0))


def _json_value(v: float) -> float | None:
    return v if math.isfinite(v) else None


def _value(v: float | None) -> float:
    return -math.inf if v is None else float(v)


@dataclass(frozen=True)
class Proposal:
    genome: Genome
    arch: str
    origin: str  # how it was made: random, mutation, crossover, ...
    parents: tuple[str, ...] = field(default=())
    # Anything JSON-able the strategy needs back in update() (e.g. the actions
    # of an edit episode); written into the candidate's spec as `trace`.
    trace: Any = None


@dataclass(frozen=True)
class WarmStart:
    """What a meta-model gives a strategy (nas/meta/warm.py builds it)."""

    seeds: tuple[Genome, ...]  # the architectures to start from, best first
    # Predicted normalised score of genomes (higher is better), or None.
    score: Callable[[Sequence[Genome]], np.ndarray] | None = None
    pretrain_steps: int = 0  # reinforce: imitation steps on the seeds


@dataclass(frozen=True)
class Screen:
    """A screen that runs inside propose (a run's `screen: {by: meta | predictor}`,
    built by nas.runner): each generation after the first proposes
    `pool_size(n, keep)` candidates and keeps the n that `score(genomes, history,
    rng)` (larger is better) ranks first. A screen by a zero-cost proxy builds
    networks, so it is a job of its own between propose and training
    (nas.search.screen), not this."""

    keep: float
    score: Callable[[Sequence[Genome], Sequence["Evaluated"], np.random.Generator], np.ndarray]


def pool_size(n: int, keep: float) -> int:
    """How many candidates a screen that keeps the share `keep` of them scores for n places."""
    return max(n, int(round(n / keep)))


def best_first(scores: Sequence[float], n: int) -> list[int]:
    """The indices of the n largest scores, best first, ties in their order (NaN last):
    what every screen keeps."""
    keys = np.nan_to_num(np.asarray(scores, dtype=float), nan=-np.inf)
    return [int(i) for i in np.argsort(-keys, kind="stable")[:n]]


class Strategy(ABC):
    name: str = ""
    # Whether it can search for several objectives at once (selecting on their
    # Pareto ranks, or on a scalar reward of them).
    multi_objective: bool = True

    def __init__(self, space: SearchSpace, population: int) -> None:
        self.space = space
        self.population = population
        self.warm: WarmStart | None = None
        # The run's screen by a predictor (nas.runner), applied by proposals().
        self.screen: Screen | None = None
        # Set by nas.runner.strategy_for from the run: its objectives (their
        # signed values are Evaluated.values), a predicate that every proposal
        # meets (the cheap constraints; None: any) with its description, and
        # the cheap metrics of a genome known without evaluating it (or None).
        self.objectives: list[dict[str, str]] = []
        self.feasible: Callable[[Genome], bool] | None = None
        self.feasibility = ""
        self.cheap: Callable[[Genome], dict[str, float]] | None = None
        # Every constraint of the run, cheap or measured (Evaluated.violation says how far a result breaks them).
        self.constraints: list[Constraint] = []

    @classmethod
    def option_names(cls) -> tuple[str, ...]:
        return constructor_options(cls, fixed=("space", "population"))

    def check_objectives(self, objectives: Sequence[dict[str, str]]) -> None:
        """Refuse objectives this strategy cannot serve (StrategyError)."""
        if len(objectives) > 1 and not self.multi_objective:
            raise StrategyError(f"strategy {self.name!r} optimises one objective; {len(objectives)} are given "
                                "(choose nsga2, rea, ga, random, ls or reinforce for several)")

    def options(self) -> dict[str, Any]:
        """The options this strategy was built with, every default filled in (run.yaml),
        so that make_strategy({"name": ..., **options()}, ...) builds the same one."""
        return {}

    def initial_state(self) -> dict[str, Any]:
        return {}

    @abstractmethod
    def propose(
        self, state: dict[str, Any], history: Sequence[Evaluated], n: int, rng: np.random.Generator
    ) -> list[Proposal]:
        """n new candidates; never an architecture already in `history`."""

    def update(self, state: dict[str, Any], results: Sequence[Evaluated]) -> dict[str, Any]:
        """The state after one generation's results; returns a new dict."""
        return dict(state)

    def proposals(
        self, state: dict[str, Any], history: Sequence[Evaluated], n: int, rng: np.random.Generator
    ) -> list[Proposal]:
        """propose(), through the run's screen when it has one in propose (`Screen`):
        after the first generation, propose pool_size(n, keep) and keep the n it
        scores best (best first). What every caller uses; strategies implement propose()."""
        screen = self.screen
        if screen is None or not history:
            return self.propose(state, history, n, rng)
        many = self.propose(state, history, pool_size(n, screen.keep), rng)
        scores = screen.score([p.genome for p in many], history, rng)
        return [many[i] for i in best_first(scores, n)]

    # -- how the workflow keeps the state between generations -------------------
    # The default is one JSON file; a strategy with tensors overrides both
    # (files in `directory`, loaded with safe loaders only).

    def save_state(self, state: dict[str, Any], directory: Path) -> None:
        write_json(layout.state_json(directory), state)

    def load_state(self, directory: Path) -> dict[str, Any]:
        state = read_json(layout.state_json(directory))
        if not isinstance(state, dict):
            raise CorruptArtefact(layout.state_json(directory), "expected a JSON object")
        return state

    # -- shared by the strategies -------------------------------------------------

    def fill(
        self,
        n: int,
        avoid: Iterable[str],
        rng: np.random.Generator,
        make: Callable[[np.random.Generator], tuple],
        feasible: Callable[[Genome], bool] | None = None,
    ) -> list[Proposal]:
        """Call `make` until n valid, distinct architectures are found that are not
        in `avoid` (architecture strings: the evaluated ones, see `known`) and for
        which `feasible` holds (a canonical genome -> bool; default the run's cheap
        constraints, `self.feasible`).

        `make` returns (genome, origin, parents), or with a trace as a fourth
        item (Proposal.trace).
        A slot that finds none in MAX_TRIES calls of `make` (a converged
        population keeps producing known children) takes a random new one.
        """
        seen = set(avoid)
        feasible = feasible or self.feasible
        proposals: list[Proposal] = []
        for _ in range(n):
            proposal = (self._first_new(seen, rng, make, feasible)
                        or self._first_new(seen, rng, self._random, feasible))
            if proposal is None:
                if feasible is not None:
                    raise StrategyError(
                        f"space {self.space.name!r}: found no new architecture that meets "
                        f"{self.feasibility or 'the constraints'} in {2 * MAX_TRIES} draws ({len(seen)} evaluated); "
                        "loosen the constraint or widen the space")
                raise StrategyError(
                    f"space {self.space.name!r}: found no architecture that is not yet evaluated "
                    f"after {MAX_TRIES} tries; the space is (nearly) exhausted ({len(seen)} seen)"
                )
            seen.add(proposal.arch)
            proposals.append(proposal)
        return proposals

    def initial(self, n: int, history: Sequence[Evaluated], rng: np.random.Generator) -> list[Proposal]:
        """A first generation: the warm start's seeds that are not yet evaluated
        (origin `meta`), then random architectures."""
        seen = {e.arch for e in history}
        proposals: list[Proposal] = []
        for genome in self.warm.seeds if self.warm is not None else ():
            arch = self.space.to_string(genome)
            if len(proposals) == n:
                break
            if arch not in seen and (self.feasible is None or self.feasible(genome)):
                seen.add(arch)
                proposals.append(Proposal(genome, arch, "meta"))
        return proposals + self.fill(n - len(proposals), seen, rng, self._random)

    def _first_new(self, seen: set[str], rng: np.random.Generator, make, feasible) -> Proposal | None:
        for _ in range(MAX_TRIES):
            genome, origin, parents, *trace = make(rng)
            if not self.space.is_valid(genome):
                continue
            genome = self.space.canonical(genome)
            if feasible is not None and not feasible(genome):
                continue
            arch = self.space.to_string(genome)
            if arch not in seen:
                return Proposal(genome, arch, origin, parents, trace[0] if trace else None)
        return None

    def _random(self, rng: np.random.Generator) -> tuple[Genome, str, tuple[str, ...]]:
        return self.space.sample(rng), "random", ()


def known(history: Iterable[Evaluated]) -> set[str]:
    """The architectures of a history: what `fill` avoids."""
    return {e.arch for e in history}


def key_of(member: Evaluated) -> tuple[float, float]:
    """One candidate's standing by the primary objective, larger is better: a
    feasible one by its fitness, behind it an infeasible one by how little it
    violates, last a failed one (constrained domination, Deb 2000)."""
    if not math.isfinite(member.fitness):
        return (-math.inf, -math.inf)
    return (-member.violation, member.fitness)


def selection_keys(members: Sequence[Evaluated]) -> list[tuple[float, float]]:
    """Comparable standings of a population, larger is better, for the operators
    (tournament, fittest): by `key_of` under one objective; under several by
    (-front index, crowding distance) of constrained non-dominated sorting, as
    NSGA-II selects (Deb et al. 2002)."""
    if not members or len(members[0].values) == 1:
        return [key_of(m) for m in members]
    standing = rank_and_crowding([m.values for m in members], [m.violation for m in members])
    return [(-float(rank), spread) for rank, spread in standing]


def fittest(members: Sequence[Evaluated], k: int) -> list[Evaluated]:
    """The k fittest, ties broken by position so the order is reproducible: by
    `key_of` under one objective, by NSGA-II's selection under several."""
    if members and len(members[0].values) > 1:
        return [members[i] for i in nsga2_select([m.values for m in members], [m.violation for m in members], k)]
    order = sorted(range(len(members)), key=lambda i: (tuple(-x for x in key_of(members[i])), i))
    return [members[i] for i in order[:k]]


def population_from_state(state: dict[str, Any]) -> list[Evaluated]:
    return [Evaluated.from_json(m) for m in state.get("population", [])]


def state_with_population(state: dict[str, Any], members: Sequence[Evaluated]) -> dict[str, Any]:
    return {**state, "population": [m.to_json() for m in members]}
