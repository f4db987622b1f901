"""The NAS-Bench-201 cell space (Dong & Yang, ICLR 2020).

A cell is a DAG on four nodes: node 0 is the cell input, node j sums one
operation applied to every earlier node, and node 3 is the cell output. The
six edges each carry one op, so a genome is six op indices. The macro skeleton
around the cell is fixed (stem, three stages of N identical cells at C, 2C and
4C channels, residual reductions between stages, classifier), so the genome
alone decides the network. Every genome is a distinct, valid architecture
string, even the all-`none` cell, as in the benchmark.
"""

from __future__ import annotations

import functools
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from nas.options import integer, values
from nas.spaces.base import (BackboneCost, Genome, SearchSpace, SpaceError, Stage, conv_out, stem_kernel,
                             stem_stride_option, torch_modules)

if TYPE_CHECKING:  # torch stays out of the import path of the fast steps
    import torch

ALL_OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
NODES = 4
# (target node, source node) of each gene, in the order the arch string lists them.
EDGES = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))
STAGES = 3


def _routes(node: int = 0) -> list[tuple[int, ...]]:
    """The genes (edge indices) of every route from `node` to the cell output."""
    if node == NODES - 1:
        return [()]
    return [(k, *rest) for k, (target, source) in enumerate(EDGES) if source == node for rest in _routes(target)]


# Input-to-output routes, by their edges: 0->3, 0->1->3, 0->2->3, 0->1->2->3.
ROUTES = tuple(sorted(_routes(), key=lambda r: (len(r), r)))


class NB201Space(SearchSpace):
    """NAS-Bench-201 cells; options: channels (C), cells_per_stage (N), ops (subset and
    order), stem_stride (the stem conv's stride; 1 as in the benchmark)."""

    name = "nb201"
    # Paths and edges side by side: on the NAS-Bench-201 table (docs/benchmarks.md) bananas
    # found better cells within 25 and 50 queries with both than with either alone.
    default_encoding = "path+onehot"

    def __init__(self, channels: int = 16, cells_per_stage: int = 5, ops: Sequence[str] | None = None,
                 stem_stride: int = 1):
        self.channels = integer("nb201", "channels", channels, 1, SpaceError)
        self.cells_per_stage = integer("nb201", "cells_per_stage", cells_per_stage, 1, SpaceError)
        self.ops = values("nb201", "ops", ALL_OPS if ops is None else ops, lambda op: op in ALL_OPS,
                          "choose from: " + ", ".join(ALL_OPS), SpaceError)
        self.stem_stride = stem_stride_option("nb201", stem_stride)
        # At most 5**6 strings: remembering them makes the searches' hot loop
        # (is this architecture new?) a dictionary look-up.
        self._strings: dict[Genome, str] = {}

    def cardinalities(self) -> tuple[int, ...]:
        return (len(self.ops),) * len(EDGES)

    def to_string(self, genome: Genome) -> str:
        key = tuple(genome)
        if key not in self._strings:
            self._strings[self.check(key)] = "+".join(
                "|" + "|".join(edges) + "|" for edges in self._node_edges(self.check(key))
            )
        return self._strings[key]

    def sample(self, rng) -> Genome:
        # Every genome is valid here, so one draw of six genes is a uniform sample.
        return tuple(int(g) for g in rng.integers(len(self.ops), size=len(EDGES)))

    def from_string(self, arch: str) -> Genome:
        parts = arch.strip().split("+")
        if len(parts) != NODES - 1:
            raise SpaceError(
                f"nb201 arch {arch!r}: expected {NODES - 1} nodes separated by '+', got {len(parts)}"
            )
        genome: list[int] = []
        for node, part in enumerate(parts, start=1):
            if len(part) < 2 or not (part.startswith("|") and part.endswith("|")):
                raise SpaceError(f"nb201 arch {arch!r}: node {node} {part!r} must be enclosed in '|'")
            edges = part[1:-1].split("|")
            if len(edges) != node:
                raise SpaceError(f"nb201 arch {arch!r}: node {node} needs {node} edges, got {len(edges)}")
            genome += [self._parse_edge(arch, node, source, edge) for source, edge in enumerate(edges)]
        return tuple(genome)

    def _parse_edge(self, arch: str, node: int, source: int, edge: str) -> int:
        op, sep, index = edge.rpartition("~")
        if not sep:
            raise SpaceError(f"nb201 arch {arch!r}: edge {edge!r} into node {node} is not of the form 'op~source'")
        if index != str(source):
            raise SpaceError(
                f"nb201 arch {arch!r}: edge {edge!r} into node {node} should come from node {source}, not {index!r}"
            )
        if op not in self.ops:
            raise SpaceError(f"nb201 arch {arch!r}: op {op!r} is not in this space; ops: {', '.join(self.ops)}")
        return self.ops.index(op)

    def _node_edges(self, genome: Genome) -> list[list[str]]:
        return [
            [f"{self.ops[genome[k]]}~{source}" for k, (target, source) in enumerate(EDGES) if target == node]
            for node in range(1, NODES)
        ]

    def describe(self, genome: Genome) -> dict[str, list[str]]:
        """{'node1': ['op~0'], 'node2': ['op~0', 'op~1'], 'node3': [...]}."""
        edges = self._node_edges(self.check(genome))
        return {f"node{node}": node_edges for node, node_edges in enumerate(edges, start=1)}

    def gene_labels(self) -> list[tuple[str, list[str]]]:
        """One position per edge, named "node<target><-node<source>" in the arch
        string's order; its values are the space's ops."""
        return [(f"node{target}<-node{source}", list(self.ops)) for target, source in EDGES]

    def encodings(self) -> tuple[str, ...]:
        return ("path", *super().encodings())

    def encode(self, genomes: Sequence[Genome], kind: str = "onehot") -> np.ndarray:
        """`path` (BANANAS, White et al. 2021): one indicator per sequence of
        operations that some input-to-output route of the cell carries, over the
        ops other than `none` (a route through `none` carries nothing): with k such
        ops, k + k^2 + k^3 columns, sequences of length 1 first, each numbered in
        base k by the ops' order in the space; `onehot` as every space."""
        if kind != "path":
            return super().encode(genomes, kind)
        live = [i for i, op in enumerate(self.ops) if op != "none"]
        digit = {op: d for d, op in enumerate(live)}
        k = len(live)
        starts = {length: sum(k**j for j in range(1, length)) for length in range(1, len(EDGES) + 1)}
        width = starts[max(len(r) for r in ROUTES)] + k ** max(len(r) for r in ROUTES)
        g = np.asarray(genomes, dtype=int).reshape(len(genomes), len(EDGES))
        x = np.zeros((len(g), width))
        for route in ROUTES:
            carried = np.ones(len(g), dtype=bool)
            column = np.zeros(len(g), dtype=int)
            for edge in route:
                op = g[:, edge]
                carried &= np.isin(op, live)
                column = column * max(k, 1) + np.array([digit.get(int(o), 0) for o in op])
            x[np.flatnonzero(carried), starts[len(route)] + column[carried]] = 1.0
        return x

    def options(self) -> dict[str, Any]:
        return {"channels": self.channels, "cells_per_stage": self.cells_per_stage, "ops": list(self.ops),
                "stem_stride": self.stem_stride}

    def build_backbone(self, genome: Genome, input_shape: tuple[int, int, int]) -> "torch.nn.Module":
        """Three stages: the stem and N cells at C channels; a residual reduction
        and N cells at 2C, then at 4C, closed by the benchmark's final BN + ReLU."""
        from torch import nn

        ops = [self.ops[g] for g in self.check(genome)]
        parts = _modules()
        channels = self.channels
        stages, shapes = [], []
        for stage in range(STAGES):
            if stage:
                layers = [parts.Reduction(channels, 2 * channels)]
                channels *= 2
            else:
                kernel = stem_kernel(self.stem_stride)
                layers = [nn.Conv2d(input_shape[0], channels, kernel, self.stem_stride, padding=kernel // 2, bias=False),
                          nn.BatchNorm2d(channels)]
            layers += [parts.Cell(ops, channels) for _ in range(self.cells_per_stage)]
            if stage == STAGES - 1:
                layers += [nn.BatchNorm2d(channels), nn.ReLU()]
            stages.append(nn.Sequential(*layers))
            shapes.append(Stage(channels, self.stem_stride * 2**stage))
        return torch_modules().Backbone(stages, shapes)

    def backbone_cost(self, genome: Genome, input_shape: tuple[int, int, int]) -> BackboneCost:
        ops = [self.ops[g] for g in self.check(genome)]
        c_in, height, width = input_shape
        channels = self.channels
        # The stem: a k x k conv (no bias) and BN.
        kernel, stride = stem_kernel(self.stem_stride), self.stem_stride
        height, width = conv_out(height, stride), conv_out(width, stride)
        params, flops = kernel * kernel * c_in * channels + 2 * channels, kernel * kernel * c_in * channels * height * width
        stages = []
        for stage in range(STAGES):
            if stage:
                # Reduction: conv_a 3x3 stride 2, conv_b 3x3, shortcut 1x1 after 2x2 average pooling.
                c_out, height, width = 2 * channels, conv_out(height, 2), conv_out(width, 2)
                params += 9 * channels * c_out + 2 * c_out + 9 * c_out * c_out + 2 * c_out + channels * c_out
                flops += (9 * channels + 9 * c_out + channels) * c_out * height * width
                channels = c_out
            for op in ops:
                if op.startswith("nor_conv_"):
                    kernel = int(op[-1])
                    params += self.cells_per_stage * (kernel * kernel * channels * channels + 2 * channels)
                    flops += self.cells_per_stage * kernel * kernel * channels * channels * height * width
            stages.append(Stage(channels, stride * 2**stage))
        params += 2 * channels  # the final BN
        return BackboneCost(params, flops, tuple(stages))


@functools.lru_cache(maxsize=None)
def _modules() -> SimpleNamespace:
    """The benchmark's building blocks, defined on first use so that importing
    this module does not import torch."""
    from torch import nn

    def relu_conv_bn(c_in: int, c_out: int, kernel: int, stride: int) -> nn.Module:
        return nn.Sequential(
            nn.ReLU(),
            nn.Conv2d(c_in, c_out, kernel, stride, padding=kernel // 2, bias=False),
            nn.BatchNorm2d(c_out),
        )

    class Zero(nn.Module):
        # Multiplying keeps dtype, device and shape (and the graph) of the input.
        def forward(self, x):
            return x.mul(0.0)

    def make_op(name: str, channels: int) -> nn.Module:
        if name == "none":
            return Zero()
        if name == "skip_connect":
            return nn.Identity()
        if name == "avg_pool_3x3":
            return nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)
        kernel = int(name[-1])  # nor_conv_1x1, nor_conv_3x3
        return relu_conv_bn(channels, channels, kernel, 1)

    class Cell(nn.Module):
        def __init__(self, ops: Sequence[str], channels: int):
            super().__init__()
            self.edges = nn.ModuleList(make_op(op, channels) for op in ops)

        def forward(self, x):
            nodes = [x]
            for node in range(1, NODES):
                inputs = [self.edges[k](nodes[source]) for k, (target, source) in enumerate(EDGES) if target == node]
                nodes.append(sum(inputs[1:], inputs[0]))
            return nodes[-1]

    class Reduction(nn.Module):
        """ResNet basic block halving the resolution and changing the width."""

        def __init__(self, c_in: int, c_out: int):
            super().__init__()
            self.conv_a = relu_conv_bn(c_in, c_out, 3, 2)
            self.conv_b = relu_conv_bn(c_out, c_out, 3, 1)
            # ceil_mode gives ceil(H/2), the strided conv's output size, for odd H too.
            self.shortcut = nn.Sequential(
                nn.AvgPool2d(2, stride=2, ceil_mode=True),
                nn.Conv2d(c_in, c_out, 1, bias=False),
            )

        def forward(self, x):
            return self.conv_b(self.conv_a(x)) + self.shortcut(x)

    return SimpleNamespace(Cell=Cell, Reduction=Reduction)
