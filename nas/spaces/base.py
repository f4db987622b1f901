"""What every search space offers: an integer genome and the operations on it.

A genome is a tuple of ints, gene i taking values in range(cardinalities()[i]).
The generic genetic operators (nas.strategies.operators) work on that form; a
space adds what only it knows: which genomes are valid, which genomes mean the
same network (canonical form), its own notion of a small change (mutate), and
the network:

    build_backbone(genome, input_shape)  a torch module whose forward returns
                                         the feature map of each stage, with
                                         their channels and strides (`stages`)
    build(genome, input_shape, classes)  backbone + classification head
                                         (global average pooling, linear)
    backbone_cost(genome, input_shape)   params, flops and stages of
                                         build_backbone()'s network, without torch
    cost(genome, input_shape, classes)   {params, flops} of build()'s network
                                         (the backbone's and the head's)
    describe(genome)                     a readable form of the architecture
                                         (what nas.report's picture draws)
    gene_labels()                        each gene's position and its values'
                                         names (what the importance table says)
    encode(genomes, kind)                rows of numbers a predictor fits
                                         (`encodings()`: onehot, and what the
                                         space adds, e.g. nb201's path encoding)
    options()                            the space's options, defaults filled in

Every space takes `stem_stride` (1, 2 or 4): the stride of the layer that first
sees the input. 1, the default, is the classification network as published; a
dense task (segmentation) sets 2 or 4, because its decoder and the backbone's
early stages then work on a smaller map (NB201's stride-1 stem at full
resolution makes every cell cost as much as the image has pixels).
"""

from __future__ import annotations

import functools
import itertools
import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from nas.registry import constructor_options
from nas.ridge import one_hot, pair_hot

if TYPE_CHECKING:  # torch stays out of the import path of propose/aggregate
    import torch

Genome = tuple[int, ...]

# A space of at most this many genomes is small enough to go through whole
# (nb201's 15,625 cells are): the meta-model ranks all of it, and a cheap
# constraint that none meets is refused before any job.
ENUMERABLE = 20_000

# Rejection sampling gives up after this many invalid draws: a space where
# valid genomes are that rare is misconfigured, and saying so beats hanging.
MAX_DRAWS = 10_000


class SpaceError(ValueError):
    """A genome or architecture string that does not belong to the space."""


@dataclass(frozen=True)
class Stage:
    """One stage's output feature map: its channels and its stride from the input."""

    channels: int
    stride: int


@dataclass(frozen=True)
class BackboneCost:
    """What `build_backbone` builds, counted without torch."""

    params: int
    flops: int
    stages: tuple[Stage, ...]


# The strides a stem may have, and the kernel of a strided stem: a 3x3 kernel at
# stride 4 would skip pixels, so the kernel grows with the stride.
STEM_STRIDES = (1, 2, 4)


def stem_kernel(stride: int) -> int:
    return 3 if stride <= 2 else stride + 1


def stem_stride_option(owner: str, value: Any) -> int:
    if isinstance(value, bool) or value not in STEM_STRIDES:
        raise SpaceError(f"{owner} option stem_stride={value!r}: must be one of "
                         + ", ".join(map(str, STEM_STRIDES)))
    return int(value)


def conv_out(size: int, stride: int) -> int:
    """Output side of a convolution or pooling with an odd kernel and padding k//2: ceil(size / stride)."""
    return -(-size // stride)


class SearchSpace(ABC):
    name: str = ""
    # The encoding a predictor uses unless told otherwise (`encode`'s kinds, '+'-joined).
    default_encoding: str = "onehot"

    @abstractmethod
    def cardinalities(self) -> tuple[int, ...]:
        """Number of values each gene can take."""

    @abstractmethod
    def to_string(self, genome: Genome) -> str:
        """Canonical architecture string: equal strings mean the same network."""

    @abstractmethod
    def from_string(self, arch: str) -> Genome:
        """Inverse of to_string; raises SpaceError on a malformed string."""

    @abstractmethod
    def build_backbone(self, genome: Genome, input_shape: tuple[int, int, int]) -> "torch.nn.Module":
        """The network without a head: forward returns each stage's feature map,
        in order, and `.stages` their channels and strides (a `Backbone`)."""

    @abstractmethod
    def backbone_cost(self, genome: Genome, input_shape: tuple[int, int, int]) -> BackboneCost:
        """build_backbone()'s trainable parameters, multiply-accumulates of its
        convolutions for one image, and its stages, without torch."""

    def cost(self, genome: Genome, input_shape: tuple[int, int, int], num_classes: int) -> dict[str, int]:
        """{"params", "flops"} of build()'s network for one image, without torch:
        trainable parameters, and multiply-accumulates of its convolutions and
        linear layers (nas.evaluators.flops counts the same on the built module)."""
        backbone = self.backbone_cost(genome, input_shape)
        head = head_cost(backbone.stages[-1].channels, num_classes)
        return {"params": backbone.params + head["params"], "flops": backbone.flops + head["flops"]}

    def build(self, genome: Genome, input_shape: tuple[int, int, int], num_classes: int) -> "torch.nn.Module":
        """A torch module mapping (B, *input_shape) to (B, num_classes) logits: the
        backbone, then global average pooling and a linear layer on its last stage.
        (Modules are created backbone first, so initial weights follow from the seed
        exactly as when the network was one sequence.)"""
        backbone = self.build_backbone(genome, input_shape)
        return torch_modules().Classifier(backbone, num_classes)

    @classmethod
    def option_names(cls) -> tuple[str, ...]:
        return constructor_options(cls)

    @abstractmethod
    def options(self) -> dict[str, Any]:
        """The options this space was built with, every default filled in, so that
        make_space({"name": ..., **options()}) builds the same space."""

    # -- defaults that suit fixed-length spaces; variable ones override ----------

    def is_valid(self, genome: Genome) -> bool:
        cards = self.cardinalities()
        return len(genome) == len(cards) and all(0 <= g < c for g, c in zip(genome, cards))

    def canonical(self, genome: Genome) -> Genome:
        """The representative genome of the network `genome` encodes."""
        return tuple(int(g) for g in genome)

    def check(self, genome: Genome) -> Genome:
        """Canonical form of a valid genome; SpaceError names what is wrong otherwise."""
        genome = tuple(int(g) for g in genome)
        if not self.is_valid(genome):
            raise SpaceError(f"genome {list(genome)} is not valid in space {self.name!r}")
        return self.canonical(genome)

    def sample(self, rng: np.random.Generator) -> Genome:
        cards = self.cardinalities()
        for _ in range(MAX_DRAWS):
            genome = tuple(int(rng.integers(c)) for c in cards)
            if self.is_valid(genome):
                return self.canonical(genome)
        raise SpaceError(f"space {self.name!r}: no valid genome in {MAX_DRAWS} random draws")

    def mutate(self, genome: Genome, rng: np.random.Generator) -> Genome:
        """The space's own smallest change: one gene resampled to a different value."""
        cards = self.cardinalities()
        movable = [i for i, c in enumerate(cards) if c > 1]
        if not movable:
            raise SpaceError(f"space {self.name!r} has a single architecture: nothing to mutate")
        for _ in range(MAX_DRAWS):
            i = movable[int(rng.integers(len(movable)))]
            value = int(rng.integers(cards[i] - 1))
            child = list(genome)
            child[i] = value if value < genome[i] else value + 1
            child_t = tuple(child)
            if self.is_valid(child_t) and self.canonical(child_t) != self.canonical(genome):
                return self.canonical(child_t)
        raise SpaceError(f"space {self.name!r}: no valid mutation of {list(genome)}")

    def neighbours(self, genome: Genome) -> list[Genome]:
        """Distinct valid canonical genomes one gene away, in a fixed order."""
        cards = self.cardinalities()
        own = self.canonical(genome)
        seen: set[Genome] = {own}
        out: list[Genome] = []
        for i, c in enumerate(cards):
            for v in range(c):
                if v == genome[i]:
                    continue
                child = genome[:i] + (v,) + genome[i + 1 :]
                if not self.is_valid(child):
                    continue
                child = self.canonical(child)
                if child not in seen:
                    seen.add(child)
                    out.append(child)
        return out

    def all_genomes(self, limit: int = ENUMERABLE) -> list[Genome] | None:
        """Every valid canonical genome, once each, when there are at most `limit`
        genomes (valid or not); None for a larger space."""
        cards = self.cardinalities()
        if math.prod(cards) > limit:
            return None
        return list(dict.fromkeys(self.canonical(g) for g in itertools.product(*map(range, cards))
                                  if self.is_valid(g)))

    def cut_points(self) -> tuple[int, ...]:
        """Positions where crossover may cut the genome (between genes i-1 and i)."""
        return tuple(range(1, len(self.cardinalities())))

    def describe(self, genome: Genome) -> Any:
        """A human-readable form of the architecture for spec files and pictures.

        nas.report.plot_architecture draws it by its form: a dict of nodes
        {"node1": ["op~0"], "node2": ["op~0", "op~1"], ...} (each node's incoming
        edges, "op~source") as a cell DAG; a list of layer dicts ({"type", "kernel",
        ...}) as a sequence of layers ending in the classification head; anything
        else (this default: the architecture string) as text.
        """
        return self.to_string(genome)

    def gene_labels(self) -> list[tuple[str, list[str]]]:
        """(position, names of its values in value order) for each gene: what the
        operation-importance table and plot call a choice. The one home of these
        names; this default says "gene i" and the values' numbers."""
        return [(f"gene {i}", [str(v) for v in range(c)]) for i, c in enumerate(self.cardinalities())]

    def encodings(self) -> tuple[str, ...]:
        """The kinds `encode` knows (each may be joined with others by '+')."""
        return ("onehot", "pairs")

    def encode(self, genomes: Sequence[Genome], kind: str = "onehot") -> np.ndarray:
        """(len(genomes), features) floats for a predictor. `onehot`, every space's:
        one indicator per gene and value (gene i = v sets column offset_i + v);
        `pairs`: one per pair of genes' values (what an additive model of genes
        misses; many columns for a long genome); kinds joined by '+'
        (`onehot+pairs`) are their columns side by side."""
        if "+" in kind:
            return np.hstack([self.encode(genomes, part) for part in kind.split("+")])
        if kind == "onehot":
            return one_hot(genomes, self.cardinalities())
        if kind == "pairs":
            return pair_hot(genomes, self.cardinalities())
        raise SpaceError(f"space {self.name!r} has no encoding {kind!r}; choose one of: "
                         + ", ".join(self.encodings()))

    def active_genes(self, genome: Genome) -> tuple[bool, ...]:
        """Which genes of `genome` mean something in its network: a gene that its
        layer does not use (a chain pool's filters) is not a choice the network made,
        and the operation importance leaves it out. Default: every gene."""
        return (True,) * len(self.cardinalities())


def head_cost(channels: int, num_classes: int) -> dict[str, int]:
    """Params and flops of the classification head (pooling is not counted)."""
    return {"params": channels * num_classes + num_classes, "flops": channels * num_classes}


@functools.lru_cache(maxsize=None)
def torch_modules() -> SimpleNamespace:
    """The modules every space's network is made of, defined on first use so that
    importing this module does not import torch."""
    from torch import nn

    class Backbone(nn.Module):
        """Stages applied in order; forward returns every stage's output."""

        def __init__(self, stages: list[nn.Module], shapes: list[Stage]) -> None:
            super().__init__()
            self.body = nn.ModuleList(stages)
            self.stages = tuple(shapes)

        def forward(self, x):
            features = []
            for stage in self.body:
                x = stage(x)
                features.append(x)
            return features

    class Classifier(nn.Module):
        """A backbone with global average pooling and a linear layer on its last stage."""

        def __init__(self, backbone: Backbone, num_classes: int) -> None:
            super().__init__()
            self.backbone = backbone
            self.head = nn.Sequential(
                nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(backbone.stages[-1].channels, num_classes)
            )

        def forward(self, x):
            return self.head(self.backbone(x)[-1])

    return SimpleNamespace(Backbone=Backbone, Classifier=Classifier)
