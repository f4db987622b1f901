"""ChainSpace: layer strings, canonical form, edits and the networks it builds."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from nas.spaces import make_space
from nas.spaces.base import SpaceError
from nas.spaces.chain import ChainSpace

EXAMPLE = "conv3x3-32-s1-relu|maxpool3-s2|avgpool3-s1|conv1x1-64-s2-gelu"

seeds = st.integers(0, 2**32 - 1)
examples = settings(max_examples=30, deadline=None)


@pytest.fixture(scope="module")
def space() -> ChainSpace:
    return ChainSpace()


def arbitrary(space: ChainSpace, rng: np.random.Generator) -> tuple[int, ...]:
    """Any in-range genome, valid or not, with empty slots anywhere."""
    return tuple(int(rng.integers(c)) for c in space.cardinalities())


# -- strings ------------------------------------------------------------------------


def test_example_string_round_trips(space):
    genome = space.from_string(EXAMPLE)
    assert genome[:20] == (1, 1, 1, 0, 0, 2, 1, 0, 1, 0, 3, 1, 0, 0, 0, 1, 0, 2, 1, 1)
    assert genome[20:] == (0,) * 10
    assert space.to_string(genome) == EXAMPLE


def test_describe_gives_one_dict_per_layer(space):
    assert space.describe(space.from_string(EXAMPLE)) == [
        {"type": "conv", "kernel": 3, "filters": 32, "stride": 1, "activation": "relu"},
        {"type": "max_pool", "kernel": 3, "stride": 2},
        {"type": "avg_pool", "kernel": 3, "stride": 1},
        {"type": "conv", "kernel": 1, "filters": 64, "stride": 2, "activation": "gelu"},
    ]


def test_gene_labels_name_each_slot_s_five_genes(space):
    labels = space.gene_labels()
    assert len(labels) == 5 * space.max_layers
    assert labels[:5] == [("layer1 type", ["none", "conv", "max_pool", "avg_pool"]), ("layer1 kernel", ["1", "3", "5"]),
                          ("layer1 filters", ["16", "32", "64"]), ("layer1 stride", ["1", "2"]),
                          ("layer1 activation", ["relu", "gelu", "silu"])]
    assert labels[-1][0] == "layer6 activation"


@pytest.mark.parametrize(
    "arch, problem",
    [
        ("dense3-s1", "'dense3-s1' is not of the form"),
        ("conv3x3-32-s1-relu|", "'' is not of the form"),
        ("conv03x03-32-s1-relu", "is not of the form"),
        ("conv3x3-32-s1-relu ", None),  # surrounding whitespace is allowed
        ("conv3x5-32-s1-relu", "kernels must be square"),
        ("conv7x7-32-s1-relu", "7 is not among this space's kernels: 1, 3, 5"),
        ("conv3x3-17-s1-relu", "17 is not among this space's filters: 16, 32, 64"),
        ("conv3x3-32-s1-relu|maxpool3-s3", "3 is not among this space's strides: 1, 2"),
        ("conv3x3-32-s1-tanh", "'tanh' is not among this space's activations: relu, gelu, silu"),
        ("|".join(["conv3x3-32-s1-relu"] * 7), "7 layers, more than max_layers=6"),
        ("conv3x3-32-s1-relu|maxpool1-s1", "kernel 1 and stride 1"),
        ("|".join(["conv3x3-32-s2-relu"] * 4), "more than max_reductions=3"),
        ("maxpool3-s2", "fewer than min_convs=1"),
    ],
)
def test_from_string_is_strict(space, arch, problem):
    if problem is None:
        assert space.to_string(space.from_string(arch)) == arch.strip()
        return
    with pytest.raises(SpaceError, match=problem):
        space.from_string(arch)


def test_from_string_refuses_layer_kinds_outside_the_space():
    space = ChainSpace(layer_types=["conv", "avg_pool"])
    with pytest.raises(SpaceError, match="'max_pool' is not among this space's layer_types: conv, avg_pool"):
        space.from_string("conv3x3-32-s1-relu|maxpool3-s2")


# -- canonical form and validity ----------------------------------------------------


@examples
@given(seed=seeds)
def test_canonical_is_idempotent_and_packs_layers(space, seed):
    genome = arbitrary(space, np.random.default_rng(seed))
    once = space.canonical(genome)
    assert space.canonical(once) == once
    assert space.layers(once) == space.layers(genome)
    n = len(space.layers(genome))
    assert all(g == 0 for g in once[5 * n :])
    assert all(layer[0] != 0 for layer in space.layers(genome))


def test_empty_slots_and_unused_genes_do_not_matter(space):
    packed = space.from_string("conv3x3-32-s1-relu|maxpool3-s2")
    spread = (0, 2, 2, 1, 2) + packed[:5] + (0,) * 5 + (2, 1, 2, 1, 2) + (0,) * 10
    assert space.canonical(spread) == packed
    assert space.to_string(spread) == "conv3x3-32-s1-relu|maxpool3-s2"
    assert space.layers(spread) == [(1, 1, 1, 0, 0), (2, 1, 0, 1, 0)]


def test_validity_rules(space):
    conv = (1, 1, 0, 0, 0)
    pool = (2, 0, 0, 0, 0)  # maxpool1-s1

    def genome(*layers):
        return tuple(g for layer in layers for g in layer) + (0,) * (5 * (6 - len(layers)))

    assert space.is_valid(genome(conv))
    assert not space.is_valid(genome())  # below min_layers
    assert not space.is_valid(genome(conv, pool))  # no-op pool
    assert space.is_valid(genome(conv, (2, 0, 0, 1, 0)))  # 1x1 pool with stride 2 subsamples
    assert not space.is_valid(genome((2, 1, 0, 1, 0)))  # no conv
    assert space.is_valid(genome(*[(1, 1, 0, 1, 0)] * 3 + [conv] * 3))
    assert not space.is_valid(genome(*[(1, 1, 0, 1, 0)] * 4))  # 4 reductions
    assert not space.is_valid(genome(conv)[:-1])
    assert not space.is_valid((4,) + genome(conv)[1:])


def test_options_move_the_validity_rules():
    space = ChainSpace(min_layers=2, min_convs=0, max_reductions=0)
    assert space.is_valid(space.canonical((2, 1, 0, 0, 0, 3, 1, 0, 0, 0) + (0,) * 20))
    assert not space.is_valid(space.canonical((1, 1, 0, 0, 0) + (0,) * 25))
    assert not space.is_valid(space.canonical((1, 1, 0, 1, 0, 1, 1, 0, 0, 0) + (0,) * 20))


def test_layer_helpers(space):
    genome = space.from_string(EXAMPLE)
    assert len(space.layers(genome)) == 4
    assert space.layers(genome)[1] == (2, 1, 0, 1, 0)
    assert space.cut_points() == (5, 10, 15, 20, 25)
    assert space.cardinalities() == (4, 3, 3, 2, 3) * 6
    with pytest.raises(SpaceError, match="genes"):
        space.layers(genome[:-1])


# -- search operators ---------------------------------------------------------------


def test_sample_covers_every_length():
    space = ChainSpace(min_layers=2, max_layers=4)
    rng = np.random.default_rng(0)
    lengths = {len(space.layers(space.sample(rng))) for _ in range(200)}
    assert lengths == {2, 3, 4}


def test_mutate_uses_all_three_edits(space):
    rng = np.random.default_rng(1)
    genome = space.from_string("conv3x3-32-s1-relu|maxpool3-s2")
    sizes = {len(space.layers(space.mutate(genome, rng))) for _ in range(100)}
    assert sizes == {1, 2, 3}


def test_mutate_repairs_an_invalid_parent_when_one_edit_can():
    space = ChainSpace()
    reduce = space.from_string("|".join(["conv3x3-32-s2-relu"] * 3))
    keep = space.from_string("|".join(["conv3x3-32-s1-relu"] * 3 + ["conv3x3-32-s2-relu"] * 3))
    one_too_many = reduce[:5] + keep[5:]  # strides 2, 1, 1, 2, 2, 2
    assert not space.is_valid(one_too_many)
    assert space.is_valid(space.mutate(one_too_many, np.random.default_rng(0)))


def test_mutate_returns_an_unrepairable_parent_unchanged():
    space = ChainSpace()
    reduce = space.from_string("|".join(["conv3x3-32-s2-relu"] * 3))
    keep = space.from_string("|".join(["conv3x3-32-s1-relu"] * 3 + ["conv3x3-32-s2-relu"] * 3))
    six_reductions = reduce[:15] + keep[15:]
    assert not space.is_valid(six_reductions)
    assert space.mutate(six_reductions, np.random.default_rng(0)) == space.canonical(six_reductions)


def test_neighbours_of_a_tiny_space_in_order():
    space = ChainSpace(max_layers=2, layer_types=["conv"], kernels=[3], filters=[8, 16], strides=[1],
                       activations=["relu"])
    conv8, conv16 = (1, 0, 0, 0, 0), (1, 0, 1, 0, 0)
    genome = conv8 + (0,) * 5
    assert space.neighbours(genome) == [conv8 + conv8, conv16 + conv8, conv8 + conv16, conv16 + (0,) * 5]


# -- edits --------------------------------------------------------------------------


def test_add_remove_and_change_layer(space):
    genome = space.from_string("conv3x3-32-s1-relu|maxpool3-s2")
    added = space.add_layer(genome, 1, (3, 2, 2, 0, 2))
    assert space.to_string(added) == "conv3x3-32-s1-relu|avgpool5-s1|maxpool3-s2"
    assert space.to_string(space.remove_layer(added, 2)) == "conv3x3-32-s1-relu|avgpool5-s1"
    assert space.to_string(space.change_layer(genome, 0, "filters", 2)) == "conv3x3-64-s1-relu|maxpool3-s2"
    assert space.to_string(space.change_layer(genome, 1, 0, 3)) == "conv3x3-32-s1-relu|avgpool3-s2"
    # A pool turned into a conv takes the first filters and activation.
    assert space.to_string(space.change_layer(genome, 1, "type", 1)) == "conv3x3-32-s1-relu|conv3x3-16-s2-relu"


@pytest.mark.parametrize(
    "edit, problem",
    [
        (lambda s, g: s.add_layer(g, 4, (1, 0, 0, 0, 0)), r"position 4.*\[0, 4\)"),
        (lambda s, g: s.add_layer(g, 0, (0, 0, 0, 0, 0)), "type in range"),
        (lambda s, g: s.add_layer(g, 0, (1, 3, 0, 0, 0)), "kernel 3"),
        (lambda s, g: s.add_layer(g, 0, (1, 0, 0, 1, 0)), "max_reductions"),
        (lambda s, g: s.remove_layer(g, 3), "position 3"),
        (lambda s, g: s.remove_layer(g, 0), "min_convs"),
        (lambda s, g: s.change_layer(g, 1, "filters", 1), "uses only type, kernel, stride"),
        (lambda s, g: s.change_layer(g, 0, "kernel", 1), "already has kernel 1"),
        (lambda s, g: s.change_layer(g, 0, "kernel", 3), "takes values in range"),
        (lambda s, g: s.change_layer(g, 0, "type", 0), "takes values in range"),
        (lambda s, g: s.change_layer(g, 0, "size", 1), "cannot change gene 'size'"),
    ],
)
def test_edits_that_do_not_apply_raise(space, edit, problem):
    genome = space.from_string("conv3x3-32-s2-relu|maxpool3-s2|maxpool3-s2")
    with pytest.raises(SpaceError, match=problem):
        edit(space, genome)


def test_edits_respect_the_layer_count_bounds():
    space = ChainSpace(max_layers=2, min_layers=2)
    genome = space.from_string("conv3x3-32-s1-relu|maxpool3-s2")
    with pytest.raises(SpaceError, match="max_layers=2"):
        space.add_layer(genome, 0, (1, 0, 0, 0, 0))
    with pytest.raises(SpaceError, match="min_layers=2"):
        space.remove_layer(genome, 0)


# -- options ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "options, problem",
    [
        ({"max_layers": 0}, "max_layers"),
        ({"min_layers": 0}, "min_layers"),
        ({"min_layers": 3, "max_layers": 2}, "min_layers=3 must be <= max_layers=2"),
        ({"layer_types": ["dense"]}, "layer_types.*conv, max_pool, avg_pool"),
        ({"layer_types": []}, "layer_types"),
        ({"layer_types": ["conv", "conv"]}, "layer_types"),
        ({"kernels": [2]}, "kernels.*odd positive"),
        ({"kernels": [3, 3]}, "kernels"),
        ({"kernels": 3}, "kernels"),
        ({"filters": [0]}, "filters.*positive"),
        ({"strides": [1.5]}, "strides"),
        ({"activations": ["softmax"]}, "activations.*relu, gelu, silu, tanh, elu"),
        ({"max_reductions": -1}, "max_reductions"),
        ({"min_convs": -1}, "min_convs"),
        ({"min_convs": 7}, "min_convs"),
        ({"layer_types": ["max_pool"]}, "min_convs=1 needs 'conv'"),
        ({"strides": [2], "max_reductions": 0}, "max_reductions=0"),
        ({"stem_stride": True}, "stem_stride"),
    ],
)
def test_bad_options_are_refused_by_name(options, problem):
    with pytest.raises(SpaceError, match=problem):
        ChainSpace(**options)


def test_registry_builds_the_space_from_its_config():
    space = make_space({"name": "chain", "max_layers": 3, "filters": [8], "activations": ["tanh"]})
    assert isinstance(space, ChainSpace)
    assert space.cardinalities() == (4, 3, 1, 2, 1) * 3


# -- networks -----------------------------------------------------------------------


def leaves(net):
    """The network's modules that hold no others, in the order they run."""
    return [m for m in net.modules() if not list(m.children())]


def test_network_follows_the_layers(space):
    net = leaves(space.build(space.from_string(EXAMPLE), (3, 32, 32), 7))
    kinds = [type(m).__name__ for m in net]
    assert kinds == [
        "Conv2d", "BatchNorm2d", "ReLU", "MaxPool2d", "AvgPool2d", "Conv2d", "BatchNorm2d", "GELU",
        "AdaptiveAvgPool2d", "Flatten", "Linear",
    ]
    assert (net[0].in_channels, net[0].out_channels, net[0].kernel_size, net[0].padding) == (3, 32, (3, 3), (1, 1))
    assert net[0].bias is None
    assert (net[3].kernel_size, net[3].stride) == (3, 2)
    assert net[4].count_include_pad is False
    assert (net[5].in_channels, net[5].out_channels, net[5].stride) == (32, 64, (2, 2))
    assert (net[-1].in_features, net[-1].out_features) == (64, 7)


def test_a_chain_of_pools_keeps_the_input_channels():
    space = ChainSpace(min_convs=0)
    net = space.build(space.from_string("maxpool3-s2|avgpool5-s1"), (3, 9, 9), 4)
    assert leaves(net)[-1].in_features == 3
    assert net(torch.randn(2, 3, 9, 9)).shape == (2, 4)
