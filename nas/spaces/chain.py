"""A variable-length chain of conv and pooling layers, as in MetaQNN (Baker et al., 2017).

The genome has `max_layers` slots of five genes: type, kernel, filters,
stride, activation. Type 0 marks an empty slot; the network is the non-empty
slots in order, followed by global average pooling and a linear classifier.
"""

from __future__ import annotations

import itertools
import re
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np

from nas.options import integer, is_int, values
from nas.spaces.base import (MAX_DRAWS, BackboneCost, Genome, SearchSpace, SpaceError, Stage, conv_out, stem_kernel,
                             stem_stride_option, torch_modules)

if TYPE_CHECKING:  # torch stays out of the import path of the fast steps
    import torch

Layer = tuple[int, ...]

LAYER_TYPES = ("conv", "max_pool", "avg_pool")
ACTIVATIONS = ("relu", "gelu", "silu", "tanh", "elu")
GENES = ("type", "kernel", "filters", "stride", "activation")
SLOT = len(GENES)
TYPE, KERNEL, FILTERS, STRIDE, ACTIVATION = range(SLOT)
# The genes each kind of layer reads; canonical form zeroes the others.
CONV_GENES = (TYPE, KERNEL, FILTERS, STRIDE, ACTIVATION)
POOL_GENES = (TYPE, KERNEL, STRIDE)
POOL_TOKENS = {"max_pool": "maxpool", "avg_pool": "avgpool"}
TORCH_ACTIVATIONS = {"relu": "ReLU", "gelu": "GELU", "silu": "SiLU", "tanh": "Tanh", "elu": "ELU"}

# Leading zeros are refused so that every string has one spelling.
_NUMBER = r"([1-9][0-9]*)"
CONV_TOKEN = re.compile(rf"conv{_NUMBER}x{_NUMBER}-{_NUMBER}-s{_NUMBER}-([a-z]+)")
POOL_TOKEN = re.compile(rf"(max|avg)pool{_NUMBER}-s{_NUMBER}")
TOKEN_FORMS = "'conv<k>x<k>-<filters>-s<stride>-<activation>', 'maxpool<k>-s<stride>' or 'avgpool<k>-s<stride>'"


class ChainSpace(SearchSpace):
    """Chains of conv / max_pool / avg_pool layers.

    conv: Conv2d(k, filters, stride s, padding k//2, no bias) -> BatchNorm -> activation.
    pools: pool(k, stride s, padding k//2); they keep the channel count and
    ignore the filters and activation genes.
    stem_stride s > 1 puts a fixed stem before the chain: Conv2d(stem_kernel(s),
    the first of `filters`, stride s) -> BatchNorm -> ReLU (no stem for 1).

    A genome is valid when its genes are in range and its layers satisfy:
      * min_layers <= number of layers <= max_layers;
      * at least min_convs of them are convs;
      * no pool has kernel 1 and stride 1 (it does nothing, so it would give
        a second string for the same network);
      * at most max_reductions layers have stride > 1.
    The rules do not depend on the input size, so validity is a property of
    the string alone. With odd kernels and padding k//2 a layer maps a side of
    H pixels to ceil(H/s), which is never zero; bounding the reductions keeps
    the chain from shrinking the image to mostly padding: with stride 2, an
    input of at least 2**max_reductions pixels a side keeps >= 1 real pixel.
    """

    name = "chain"

    def __init__(
        self,
        max_layers: int = 6,
        min_layers: int = 1,
        layer_types: Sequence[str] | None = None,
        kernels: Sequence[int] = (1, 3, 5),
        filters: Sequence[int] = (16, 32, 64),
        strides: Sequence[int] = (1, 2),
        activations: Sequence[str] = ("relu", "gelu", "silu"),
        max_reductions: int = 3,
        min_convs: int = 1,
        stem_stride: int = 1,
    ):
        self.max_layers = integer("chain", "max_layers", max_layers, 1, SpaceError)
        self.min_layers = integer("chain", "min_layers", min_layers, 1, SpaceError)
        if self.min_layers > self.max_layers:
            raise SpaceError(f"chain option min_layers={min_layers} must be <= max_layers={max_layers}")
        self.layer_types = values(
            "chain", "layer_types", LAYER_TYPES if layer_types is None else layer_types,
            lambda v: v in LAYER_TYPES, "choose from: " + ", ".join(LAYER_TYPES), SpaceError,
        )
        self.kernels = values("chain", "kernels", kernels, lambda v: is_int(v) and v > 0 and v % 2,
                              "odd positive integers", SpaceError)
        self.filters = values("chain", "filters", filters, lambda v: is_int(v) and v > 0, "positive integers",
                              SpaceError)
        self.strides = values("chain", "strides", strides, lambda v: is_int(v) and v > 0, "positive integers",
                              SpaceError)
        self.activations = values(
            "chain", "activations", activations, lambda v: v in ACTIVATIONS, "choose from: " + ", ".join(ACTIVATIONS),
            SpaceError,
        )
        self.max_reductions = integer("chain", "max_reductions", max_reductions, 0, SpaceError)
        self.min_convs = integer("chain", "min_convs", min_convs, 0, SpaceError)
        self.stem_stride = stem_stride_option("chain", stem_stride)
        self._check_feasible()
        # Values per gene within a slot; type has one more for the empty slot.
        self._counts = (
            len(self.layer_types) + 1, len(self.kernels), len(self.filters), len(self.strides), len(self.activations)
        )

    def _check_feasible(self) -> None:
        if self.min_convs and "conv" not in self.layer_types:
            raise SpaceError(f"chain option min_convs={self.min_convs} needs 'conv' in layer_types")
        if self.min_convs > self.max_layers:
            raise SpaceError(f"chain option min_convs={self.min_convs} must be <= max_layers={self.max_layers}")
        needed = max(self.min_layers, self.min_convs)
        if 1 not in self.strides and needed > self.max_reductions:
            raise SpaceError(
                f"chain options: every layer reduces (strides={list(self.strides)} lacks 1), so "
                f"max_reductions={self.max_reductions} cannot hold {needed} layers (min_layers / min_convs)"
            )

    # -- genome structure -----------------------------------------------------------

    def cardinalities(self) -> tuple[int, ...]:
        return self._counts * self.max_layers

    def layers(self, genome: Genome) -> list[Layer]:
        """The canonical 5-gene tuples of the non-empty slots, in order."""
        genome = tuple(int(g) for g in genome)
        problem = self._range_problem(genome)
        if problem:
            raise SpaceError(f"chain genome {list(genome)} {problem}")
        slots = (genome[i : i + SLOT] for i in range(0, len(genome), SLOT))
        return [self._clean(slot) for slot in slots if slot[TYPE] != 0]

    def canonical(self, genome: Genome) -> Genome:
        return self._pack(self.layers(genome))

    def _pack(self, layers: Sequence[Layer]) -> Genome:
        return tuple(itertools.chain(*layers)) + (0,) * (SLOT * (self.max_layers - len(layers)))

    def _clean(self, layer: Sequence[int]) -> Layer:
        used = self._used(layer)
        return tuple(g if i in used else 0 for i, g in enumerate(layer))

    def _kind(self, layer: Sequence[int]) -> str:
        return self.layer_types[layer[TYPE] - 1]

    def _used(self, layer: Sequence[int]) -> tuple[int, ...]:
        return CONV_GENES if self._kind(layer) == "conv" else POOL_GENES

    def used_genes(self, layer: Sequence[int]) -> tuple[int, ...]:
        """Indices (into GENES) of the genes a non-empty layer uses."""
        return self._used(layer)

    def _values(self, gene: int) -> range:
        """The values a gene of a (non-empty) layer may take."""
        return range(1, self._counts[TYPE]) if gene == TYPE else range(self._counts[gene])

    # -- validity ---------------------------------------------------------------------

    def is_valid(self, genome: Genome) -> bool:
        return self._problem(tuple(int(g) for g in genome)) is None

    def check(self, genome: Genome) -> Genome:
        genome = tuple(int(g) for g in genome)
        problem = self._problem(genome)
        if problem:
            raise SpaceError(f"chain genome {list(genome)} {problem}")
        return self.canonical(genome)

    def _range_problem(self, genome: Genome) -> str | None:
        cards = self.cardinalities()
        if len(genome) != len(cards):
            return f"has {len(genome)} genes; this space needs {len(cards)} ({self.max_layers} slots of {SLOT})"
        for i, (g, c) in enumerate(zip(genome, cards)):
            if not 0 <= g < c:
                return f"has {GENES[i % SLOT]} gene {g} in slot {i // SLOT}; it must be in [0, {c})"
        return None

    def _problem(self, genome: Genome) -> str | None:
        """Why the genome is not valid, or None if it is."""
        problem = self._range_problem(genome)
        if problem:
            return problem
        layers = self.layers(genome)
        if len(layers) < self.min_layers:
            return f"has {len(layers)} layers, fewer than min_layers={self.min_layers}"
        for position, layer in enumerate(layers):
            if self._kind(layer) != "conv" and self.kernels[layer[KERNEL]] == 1 and self.strides[layer[STRIDE]] == 1:
                return f"has a pool with kernel 1 and stride 1 at layer {position}, which does nothing"
        reductions = sum(self.strides[layer[STRIDE]] > 1 for layer in layers)
        if reductions > self.max_reductions:
            return f"has {reductions} layers with stride > 1, more than max_reductions={self.max_reductions}"
        convs = sum(self._kind(layer) == "conv" for layer in layers)
        if convs < self.min_convs:
            return f"has {convs} conv layers, fewer than min_convs={self.min_convs}"
        return None

    # -- strings ----------------------------------------------------------------------

    def to_string(self, genome: Genome) -> str:
        return "|".join(self._token(layer) for layer in self.layers(self.check(genome)))

    def _token(self, layer: Layer) -> str:
        kind, kernel, stride = self._kind(layer), self.kernels[layer[KERNEL]], self.strides[layer[STRIDE]]
        if kind == "conv":
            filters, activation = self.filters[layer[FILTERS]], self.activations[layer[ACTIVATION]]
            return f"conv{kernel}x{kernel}-{filters}-s{stride}-{activation}"
        return f"{POOL_TOKENS[kind]}{kernel}-s{stride}"

    def from_string(self, arch: str) -> Genome:
        tokens = arch.strip().split("|")
        if len(tokens) > self.max_layers:
            raise SpaceError(f"chain arch {arch!r} has {len(tokens)} layers, more than max_layers={self.max_layers}")
        return self.check(self._pack([self._parse_token(token) for token in tokens]))

    def _parse_token(self, token: str) -> Layer:
        conv, pool = CONV_TOKEN.fullmatch(token), POOL_TOKEN.fullmatch(token)
        if conv:
            kind, kernel, kernel_w, filters, stride, activation = "conv", *conv.groups()
            if kernel != kernel_w:
                raise SpaceError(f"chain layer {token!r}: kernels must be square, got {kernel}x{kernel_w}")
        elif pool:
            kind, kernel, stride = f"{pool[1]}_pool", pool[2], pool[3]
        else:
            raise SpaceError(f"chain layer {token!r} is not of the form {TOKEN_FORMS}")
        layer = [0] * SLOT
        layer[TYPE] = _index(token, "layer_types", kind, self.layer_types) + 1
        layer[KERNEL] = _index(token, "kernels", int(kernel), self.kernels)
        layer[STRIDE] = _index(token, "strides", int(stride), self.strides)
        if conv:
            layer[FILTERS] = _index(token, "filters", int(filters), self.filters)
            layer[ACTIVATION] = _index(token, "activations", activation, self.activations)
        return tuple(layer)

    def describe(self, genome: Genome) -> list[dict[str, Any]]:
        """One dict per layer: type, kernel, stride, and for convs filters and activation."""
        return [self._layer_dict(layer) for layer in self.layers(self.check(genome))]

    def gene_labels(self) -> list[tuple[str, list[str]]]:
        """Five positions per slot, "layer<k> type" ... "layer<k> activation" (k from 1);
        type's values are "none" (an empty slot) and the layer types, the others
        the space's kernels, filters, strides and activations. In a canonical
        genome a gene its layer does not use (a pool's filters, an empty slot's
        kernel) holds its first value; `active_genes` says which those are."""
        names = (["none", *self.layer_types], [str(k) for k in self.kernels], [str(f) for f in self.filters],
                 [str(s) for s in self.strides], list(self.activations))
        return [(f"layer{slot + 1} {gene}", list(names[g])) for slot in range(self.max_layers)
                for g, gene in enumerate(GENES)]

    def active_genes(self, genome: Genome) -> tuple[bool, ...]:
        """A slot's type always (an empty slot is the choice "none"); its other genes
        where its layer uses them (a pool has no filters or activation)."""
        genome = tuple(int(g) for g in genome)
        out: list[bool] = []
        for i in range(0, len(genome), SLOT):
            slot = genome[i : i + SLOT]
            used = self._used(slot) if slot[TYPE] != 0 else (TYPE,)
            out += [g in used for g in range(SLOT)]
        return tuple(out)

    def _layer_dict(self, layer: Layer) -> dict[str, Any]:
        kind = self._kind(layer)
        out: dict[str, Any] = {"type": kind, "kernel": self.kernels[layer[KERNEL]]}
        if kind == "conv":
            out["filters"] = self.filters[layer[FILTERS]]
        out["stride"] = self.strides[layer[STRIDE]]
        if kind == "conv":
            out["activation"] = self.activations[layer[ACTIVATION]]
        return out

    # -- edits: add, remove or change one layer -------------------------------------

    def add_layer(self, genome: Genome, position: int, layer: Sequence[int]) -> Genome:
        """Insert `layer` (5 genes, type >= 1) before layer `position` (0..len(layers))."""
        layers = self.layers(self.check(genome))
        if len(layers) >= self.max_layers:
            raise SpaceError(f"cannot add a layer: the chain already has max_layers={self.max_layers}")
        _check_position("add at", position, len(layers) + 1)
        return self.check(self._pack(_added(layers, position, self._layer(layer))))

    def remove_layer(self, genome: Genome, position: int) -> Genome:
        layers = self.layers(self.check(genome))
        if len(layers) <= self.min_layers:
            raise SpaceError(f"cannot remove a layer: the chain has only min_layers={self.min_layers}")
        _check_position("remove", position, len(layers))
        return self.check(self._pack(_removed(layers, position)))

    def change_layer(self, genome: Genome, position: int, gene: int | str, value: int) -> Genome:
        """Set gene `gene` (index into GENES, or its name) of layer `position` to `value`.

        The gene must be one the layer uses. A pool turned into a conv gets the
        first filters and activation option.
        """
        layers = self.layers(self.check(genome))
        _check_position("change", position, len(layers))
        index = GENES.index(gene) if gene in GENES else gene
        if index not in self._used(layers[position]):
            raise SpaceError(
                f"cannot change gene {gene!r} of layer {position}: a {self._kind(layers[position])} layer "
                f"uses only {', '.join(GENES[i] for i in self._used(layers[position]))}"
            )
        if value not in self._values(index):
            raise SpaceError(f"cannot set {GENES[index]} to {value}; it takes values in {self._values(index)}")
        if layers[position][index] == value:
            raise SpaceError(f"layer {position} already has {GENES[index]} {value}")
        return self.check(self._pack(self._changed(layers, position, index, value)))

    def _layer(self, layer: Sequence[int]) -> Layer:
        layer = tuple(int(g) for g in layer)
        if len(layer) != SLOT or layer[TYPE] not in self._values(TYPE):
            raise SpaceError(f"layer {list(layer)} must have {SLOT} genes and a type in {self._values(TYPE)}")
        for gene, g in enumerate(layer):
            if g not in self._values(gene) and gene in self._used(layer):
                raise SpaceError(f"layer {list(layer)}: {GENES[gene]} {g} is not in {self._values(gene)}")
        return self._clean(layer)

    def _changed(self, layers: list[Layer], position: int, gene: int, value: int) -> list[Layer]:
        layer = list(layers[position])
        layer[gene] = value
        return layers[:position] + [self._clean(layer)] + layers[position + 1 :]

    def _all_layers(self) -> list[Layer]:
        """Every distinct layer, in a fixed order."""
        out: list[Layer] = []
        for kind in self._values(TYPE):
            used = self._used((kind,))
            ranges = [[kind] if g == TYPE else self._values(g) if g in used else [0] for g in range(SLOT)]
            out += itertools.product(*ranges)
        return out

    def _random_layer(self, rng: np.random.Generator) -> Layer:
        layer = [0] * SLOT
        layer[TYPE] = int(rng.integers(1, self._counts[TYPE]))
        for gene in self._used(layer)[1:]:
            layer[gene] = int(rng.integers(self._counts[gene]))
        return tuple(layer)

    def _changeable(self, layers: list[Layer]) -> list[tuple[int, int]]:
        """(position, gene) pairs that can take another value."""
        return [(p, g) for p, layer in enumerate(layers) for g in self._used(layer) if len(self._values(g)) > 1]

    # -- search operators -------------------------------------------------------------

    def sample(self, rng: np.random.Generator) -> Genome:
        for _ in range(MAX_DRAWS):
            length = int(rng.integers(self.min_layers, self.max_layers + 1))
            genome = self._pack([self._random_layer(rng) for _ in range(length)])
            if self.is_valid(genome):
                return genome
        raise SpaceError(f"space 'chain': no valid genome in {MAX_DRAWS} random draws")

    def mutate(self, genome: Genome, rng: np.random.Generator) -> Genome:
        """One random edit (add, remove or change a layer, each kind equally likely
        when possible) that gives a different valid network.

        The parent may be invalid (a crossover child with too many
        reductions, say). If no single edit makes it valid, its canonical form
        comes back unchanged for the caller to discard, rather than an error
        that would end the search.
        """
        parent = self.canonical(genome)
        if not self.is_valid(parent) and not self.neighbours(parent):
            return parent
        layers = self.layers(parent)
        edits = self._random_edits(layers)
        if not edits:
            raise SpaceError(f"chain genome {list(parent)} has no possible edit")
        for _ in range(MAX_DRAWS):
            child = self._pack(edits[int(rng.integers(len(edits)))](rng))
            if child != parent and self.is_valid(child):
                return child
        raise SpaceError(f"space 'chain': no valid mutation of {list(parent)} in {MAX_DRAWS} draws")

    def _random_edits(self, layers: list[Layer]) -> list[Callable[[np.random.Generator], list[Layer]]]:
        n, changeable = len(layers), self._changeable(layers)
        edits: list[Callable[[np.random.Generator], list[Layer]]] = []
        if n < self.max_layers:
            edits.append(lambda rng: _added(layers, int(rng.integers(n + 1)), self._random_layer(rng)))
        if n > self.min_layers:
            edits.append(lambda rng: _removed(layers, int(rng.integers(n))))
        if changeable:

            def change(rng: np.random.Generator) -> list[Layer]:
                position, gene = changeable[int(rng.integers(len(changeable)))]
                others = [v for v in self._values(gene) if v != layers[position][gene]]
                return self._changed(layers, position, gene, others[int(rng.integers(len(others)))])

            edits.append(change)
        return edits

    def neighbours(self, genome: Genome) -> list[Genome]:
        """Distinct valid canonical genomes one add, remove or change away:
        additions first, then removals, then changes, each by position."""
        parent = self.canonical(genome)
        layers = self.layers(parent)
        children: list[list[Layer]] = []
        if len(layers) < self.max_layers:
            children += [_added(layers, p, new) for p in range(len(layers) + 1) for new in self._all_layers()]
        children += [_removed(layers, p) for p in range(len(layers))]
        children += [
            self._changed(layers, p, g, v) for p, g in self._changeable(layers) for v in self._values(g)
            if v != layers[p][g]
        ]
        seen, out = {parent}, []
        for child in map(self._pack, children):
            if child not in seen and self.is_valid(child):
                seen.add(child)
                out.append(child)
        return out

    def cut_points(self) -> tuple[int, ...]:
        """Slot boundaries, so that crossover exchanges whole layers."""
        return tuple(range(SLOT, SLOT * self.max_layers, SLOT))

    # -- network ----------------------------------------------------------------------

    def options(self) -> dict[str, Any]:
        return {
            "max_layers": self.max_layers, "min_layers": self.min_layers, "layer_types": list(self.layer_types),
            "kernels": list(self.kernels), "filters": list(self.filters), "strides": list(self.strides),
            "activations": list(self.activations), "max_reductions": self.max_reductions,
            "min_convs": self.min_convs, "stem_stride": self.stem_stride,
        }

    def _stages(self, genome: Genome) -> list[list[Layer]]:
        """The layers grouped into stages: a new stage starts at each layer with stride > 1."""
        stages: list[list[Layer]] = [[]]
        for layer in self.layers(self.check(genome)):
            if self.strides[layer[STRIDE]] > 1 and stages[-1]:
                stages.append([])
            stages[-1].append(layer)
        return stages

    def build_backbone(self, genome: Genome, input_shape: tuple[int, int, int]) -> "torch.nn.Module":
        from torch import nn

        channels, stride = input_shape[0], 1
        stages, shapes = [], []
        for number, layers in enumerate(self._stages(genome)):
            modules: list[nn.Module] = []
            if number == 0 and self.stem_stride > 1:
                kernel, stride = stem_kernel(self.stem_stride), self.stem_stride
                modules += [nn.Conv2d(channels, self.filters[0], kernel, stride, padding=kernel // 2, bias=False),
                            nn.BatchNorm2d(self.filters[0]), nn.ReLU()]
                channels = self.filters[0]
            for layer in layers:
                kind, kernel, s = self._kind(layer), self.kernels[layer[KERNEL]], self.strides[layer[STRIDE]]
                if kind == "conv":
                    filters = self.filters[layer[FILTERS]]
                    modules += [
                        nn.Conv2d(channels, filters, kernel, s, padding=kernel // 2, bias=False),
                        nn.BatchNorm2d(filters),
                        getattr(nn, TORCH_ACTIVATIONS[self.activations[layer[ACTIVATION]]])(),
                    ]
                    channels = filters
                elif kind == "max_pool":
                    modules.append(nn.MaxPool2d(kernel, s, padding=kernel // 2))
                else:
                    modules.append(nn.AvgPool2d(kernel, s, padding=kernel // 2, count_include_pad=False))
                stride *= s
            stages.append(nn.Sequential(*modules))
            shapes.append(Stage(channels, stride))
        return torch_modules().Backbone(stages, shapes)

    def backbone_cost(self, genome: Genome, input_shape: tuple[int, int, int]) -> BackboneCost:
        channels, height, width = input_shape
        params = flops = 0
        total_stride = 1

        def conv(kernel: int, stride: int, filters: int) -> None:
            nonlocal params, flops, channels
            params += kernel * kernel * channels * filters + 2 * filters  # conv (no bias) and BN
            flops += kernel * kernel * channels * filters * conv_out(height, stride) * conv_out(width, stride)
            channels = filters

        if self.stem_stride > 1:
            conv(stem_kernel(self.stem_stride), self.stem_stride, self.filters[0])
            height, width, total_stride = conv_out(height, self.stem_stride), conv_out(width, self.stem_stride), self.stem_stride
        stages = []
        for layers in self._stages(genome):
            for layer in layers:
                kernel, stride = self.kernels[layer[KERNEL]], self.strides[layer[STRIDE]]
                if self._kind(layer) == "conv":
                    conv(kernel, stride, self.filters[layer[FILTERS]])
                height, width, total_stride = conv_out(height, stride), conv_out(width, stride), total_stride * stride
            stages.append(Stage(channels, total_stride))
        return BackboneCost(params, flops, tuple(stages))


def _added(layers: list[Layer], position: int, layer: Layer) -> list[Layer]:
    return layers[:position] + [layer] + layers[position:]


def _removed(layers: list[Layer], position: int) -> list[Layer]:
    return layers[:position] + layers[position + 1 :]


def _check_position(action: str, position: int, count: int) -> None:
    if not (is_int(position) and 0 <= position < count):
        raise SpaceError(f"cannot {action} layer position {position!r}; it must be in [0, {count})")


def _index(token: str, option: str, value: Any, choices: tuple) -> int:
    if value not in choices:
        raise SpaceError(
            f"chain layer {token!r}: {value!r} is not among this space's {option}: {', '.join(map(str, choices))}"
        )
    return choices.index(value)

