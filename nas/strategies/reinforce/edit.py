"""The edit formulation's MDP over chain spaces: actions, their masks, the policy over them.

An episode edits a network step by step: it starts from the best architecture
evaluated so far (or, before any has succeeded, from a random one per
episode) and ends at `stop` or after `max_edits` edits; the candidate is the
network it ends with. The policy is an MLP (one tanh layer of `hidden` units)
over the one-hot genome of the current network and the one-hot step number.
Proposal.trace is {"start": genome, "known_start": bool, "actions": [action, ...]}.
"""

from __future__ import annotations

import functools
import itertools
import math
from typing import Any, Sequence

import torch
from torch import nn

from nas.spaces.base import Genome, SpaceError
from nas.spaces.chain import GENES, SLOT, TYPE, ChainSpace
from nas.strategies.base import Evaluated, StrategyError

# What a space needs to be edited (the chain space has them).
EDIT_METHODS = ("add_layer", "remove_layer", "change_layer", "used_genes")
KINDS = ("add", "remove", "change", "stop")
ADD, REMOVE, CHANGE, STOP = range(len(KINDS))


class EditPolicy(nn.Module):
    """Logits of every head of EditActions from the encoded network and step."""

    def __init__(self, inputs: int, hidden: int, outputs: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(inputs, hidden), nn.Tanh(), nn.Linear(hidden, outputs))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class EditActions:
    """The factorised actions of an edit episode on a chain space.

    An action is a list of ints shaped like the space's edit calls:
      [0, position, type, kernel, filters, stride, activation]  add_layer(genome, position, layer)
      [1, position]                                              remove_layer(genome, position)
      [2, position, gene, value]                                 change_layer(genome, position, gene, value)
      [3]                                                        stop
    Each int is one decision, drawn from its own softmax head (kind; position
    per kind; per gene the value of an added layer; the gene to change; per
    gene its new value). A decision may take only values that leave at least
    one way to finish the action into a valid network, so every action is
    possible and the masked distributions are exactly the policy. A pool's
    filters and activation are 0: a decision with one allowed value, which
    adds nothing to log pi. Stop is masked at the first step of an episode
    that starts from an evaluated network, which would otherwise come back.
    """

    def __init__(self, space: ChainSpace, max_edits: int) -> None:
        self.space = space
        cards = space.cardinalities()
        slot = cards[:SLOT]  # values per gene of one layer; type counts the empty slot
        self.values = [range(1, slot[TYPE]) if g == TYPE else range(slot[g]) for g in range(SLOT)]
        sizes = {"kind": len(KINDS), "change_gene": SLOT}
        sizes.update({f"{kind}_position": space.max_layers for kind in KINDS[:3]})
        sizes.update({f"{kind}_{GENES[g]}": len(self.values[g]) for kind in KINDS[::2] for g in range(SLOT)})
        starts = itertools.accumulate(sizes.values(), initial=0)
        self.heads = {name: start for name, start in zip(sizes, starts)}
        self.outputs = sum(sizes.values())
        self.gene_start = list(itertools.accumulate(cards, initial=0))
        self.inputs = self.gene_start[-1] + max_edits
        # propose and update ask about the same (network, partial action) pairs.
        self._feasible = functools.lru_cache(maxsize=1 << 16)(self._feasible_uncached)

    def encode(self, genome: Genome, step: int) -> list[int]:
        """Where the one-hot input of (network, step) is 1."""
        return [start + g for start, g in zip(self.gene_start, genome)] + [self.gene_start[-1] + step]

    def apply(self, genome: Genome, action: Sequence[int]) -> Genome:
        kind = action[0]
        if kind == ADD:
            return self.space.add_layer(genome, action[1], action[2:])
        if kind == REMOVE:
            return self.space.remove_layer(genome, action[1])
        if kind == CHANGE:
            return self.space.change_layer(genome, action[1], action[2], action[3])
        return genome

    def _next(self, layers: list, prefix: tuple[int, ...], can_stop: bool) -> tuple[str, Sequence[int]] | None:
        """The head and the values the next decision may take by the action's form, or None when complete."""
        n, depth = len(layers), len(prefix)
        if depth == 0:
            possible = (n < self.space.max_layers, n > self.space.min_layers, True, can_stop)
            return "kind", [k for k, ok in enumerate(possible) if ok]
        kind = prefix[0]
        if kind == ADD and depth < 2 + SLOT:
            if depth == 1:
                return "add_position", range(n + 1)
            gene = depth - 2
            used = gene == TYPE or gene in self.space.used_genes(prefix[2:3])  # prefix[2] is the type
            return f"add_{GENES[gene]}", self.values[gene] if used else (0,)
        if kind == REMOVE and depth == 1:
            return "remove_position", range(n)
        if kind == CHANGE and depth < 4:
            if depth == 1:
                return "change_position", range(n)
            layer = layers[prefix[1]]
            if depth == 2:
                return "change_gene", [g for g in self.space.used_genes(layer) if len(self.values[g]) > 1]
            return f"change_{GENES[prefix[2]]}", [v for v in self.values[prefix[2]] if v != layer[prefix[2]]]
        return None

    def _feasible_uncached(self, genome: Genome, prefix: tuple[int, ...], can_stop: bool) -> bool:
        """Whether the partial action can be finished into a valid network."""
        step = self._next(self.space.layers(genome), prefix, can_stop)
        if step is None:
            try:
                self.apply(genome, prefix)
            except SpaceError:
                return False
            return True
        return any(self._feasible(genome, prefix + (v,), can_stop) for v in step[1])

    def choices(self, genome: Genome, prefix: tuple[int, ...], can_stop: bool) -> tuple[list[int], list[int]] | None:
        """The logit columns and values the next decision may take, or None when the action is complete."""
        step = self._next(self.space.layers(genome), prefix, can_stop)
        if step is None:
            return None
        head, values = step
        allowed = [v for v in values if self._feasible(genome, prefix + (v,), can_stop)]
        if not allowed:
            raise StrategyError(f"chain network {list(genome)} has no valid edit")
        offset = self.heads[head] - (1 if head.endswith("_type") else 0)
        return [offset + v for v in allowed], allowed

    def sample(
        self, net: nn.Module, genome: Genome, step: int, can_stop: bool, generator: torch.Generator
    ) -> list[int]:
        with torch.no_grad():
            x = torch.zeros(self.inputs)
            x[self.encode(genome, step)] = 1.0
            logits = net(x)
        prefix: tuple[int, ...] = ()
        while (choice := self.choices(genome, prefix, can_stop)) is not None:
            columns, values = choice
            pick = torch.multinomial(torch.softmax(logits[columns], -1), 1, generator=generator)
            prefix += (values[int(pick)],)
        return list(prefix)

    def replay(self, result: Evaluated, batch: "StepBatch") -> int:
        """Add the steps of the result's episode to `batch`; their number."""
        trace = result.trace
        try:
            genome = self.space.check(trace["start"])
            for t, action in enumerate(trace["actions"]):
                batch.add_step(self.encode(genome, t))
                for i in range(len(action)):
                    columns, values = self.choices(genome, tuple(action[:i]), can_stop(trace, t))
                    batch.add_decision(columns, values.index(action[i]))
                if self.choices(genome, tuple(action), can_stop(trace, t)) is not None:
                    raise ValueError(f"action {action} is incomplete")
                genome = self.apply(genome, action)
        except (KeyError, TypeError, ValueError) as e:  # SpaceError is a ValueError
            raise StrategyError(f"candidate {result.key}: its edit trace does not replay ({e})") from None
        if genome != self.space.canonical(result.genome):
            raise StrategyError(f"candidate {result.key}: its edit trace leads to {list(genome)}, not its genome")
        return len(trace["actions"])


class StepBatch:
    """The steps of a batch of episodes, for one forward pass of the policy."""

    def __init__(self) -> None:
        self.inputs: list[list[int]] = []  # per step: where its one-hot input is 1
        self.decisions: list[tuple[int, list[int], int]] = []  # (step, allowed columns, index of the chosen one)

    def add_step(self, ones: list[int]) -> None:
        self.inputs.append(ones)

    def add_decision(self, columns: list[int], chosen: int) -> None:
        self.decisions.append((len(self.inputs) - 1, columns, chosen))

    def evaluate(self, net: nn.Module, actions: EditActions) -> tuple[torch.Tensor, torch.Tensor]:
        """Per step: log pi(a_t|s_t) and the summed entropies of its decisions."""
        x = torch.zeros(len(self.inputs), actions.inputs)
        for row, ones in enumerate(self.inputs):
            x[row, ones] = 1.0
        logits = net(x)
        steps = torch.tensor([d[0] for d in self.decisions])
        allowed = torch.zeros(len(self.decisions), actions.outputs, dtype=torch.bool)
        for i, (_, columns, _) in enumerate(self.decisions):
            allowed[i, columns] = True
        chosen = torch.tensor([columns[k] for _, columns, k in self.decisions])
        log_p = torch.log_softmax(logits[steps].masked_fill(~allowed, -math.inf), -1)
        picked = log_p.gather(1, chosen[:, None])[:, 0]
        # Masked entries have log_p = -inf and p = 0: zero their log_p, since
        # 0 * -inf would be NaN (and its gradient too, even behind a where).
        entropy = -(log_p.exp() * log_p.masked_fill(~allowed, 0.0)).sum(-1)
        per_step = torch.zeros(len(self.inputs))
        return per_step.index_add(0, steps, picked), per_step.index_add(0, steps, entropy)


def can_stop(trace: dict[str, Any], step: int) -> bool:
    return step > 0 or not trace["known_start"]
