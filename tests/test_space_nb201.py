"""NB201Space: arch strings, genome operations and the networks it builds."""

from __future__ import annotations


import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from nas.spaces import make_space
from nas.spaces.base import SpaceError
from nas.spaces.nb201 import ALL_OPS, NB201Space

EXAMPLE = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
ALL_CONV3 = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"
ALL_NONE = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"
ALL_SKIP = "|skip_connect~0|+|skip_connect~0|skip_connect~1|+|skip_connect~0|skip_connect~1|skip_connect~2|"

seeds = st.integers(0, 2**32 - 1)
examples = settings(max_examples=30, deadline=None)


@pytest.fixture(scope="module")
def space() -> NB201Space:
    return NB201Space()


@pytest.fixture(scope="module")
def tiny() -> NB201Space:
    return NB201Space(channels=4, cells_per_stage=1)


def params(net: torch.nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


# -- strings ------------------------------------------------------------------------


def test_example_string_parses_to_the_documented_genome(space):
    genome = space.from_string(EXAMPLE)
    assert genome == (3, 3, 4, 1, 3, 1)
    assert space.to_string(genome) == EXAMPLE


def test_describe_lists_the_edges_into_each_node(space):
    assert space.describe(space.from_string(EXAMPLE)) == {
        "node1": ["nor_conv_3x3~0"],
        "node2": ["nor_conv_3x3~0", "avg_pool_3x3~1"],
        "node3": ["skip_connect~0", "nor_conv_3x3~1", "skip_connect~2"],
    }


def test_gene_labels_name_the_edges_in_genome_order():
    labels = NB201Space(ops=["none", "nor_conv_3x3"]).gene_labels()
    assert [position for position, _ in labels] == [
        "node1<-node0", "node2<-node0", "node2<-node1", "node3<-node0", "node3<-node1", "node3<-node2"]
    assert all(values == ["none", "nor_conv_3x3"] for _, values in labels)


@pytest.mark.parametrize(
    "arch, problem",
    [
        ("|none~0|+|none~0|none~1|", "expected 3 nodes"),
        (ALL_NONE + "+|none~0|", "expected 3 nodes"),
        ("|none~0|+|none~0|+|none~0|none~1|none~2|", "node 2 needs 2 edges"),
        ("|none~0|+|none~0|none~0|+|none~0|none~1|none~2|", "should come from node 1"),
        ("|none~1|+|none~0|none~1|+|none~0|none~1|none~2|", "should come from node 0"),
        ("|conv_5x5~0|+|none~0|none~1|+|none~0|none~1|none~2|", "op 'conv_5x5' is not in this space"),
        ("|none|+|none~0|none~1|+|none~0|none~1|none~2|", "is not of the form 'op~source'"),
        ("none~0+|none~0|none~1|+|none~0|none~1|none~2|", "must be enclosed in '|'"),
        ("", "expected 3 nodes"),
    ],
)
def test_from_string_refuses_malformed_strings(space, arch, problem):
    with pytest.raises(SpaceError, match=problem):
        space.from_string(arch)


def test_from_string_refuses_ops_outside_a_subset_space():
    space = NB201Space(ops=["skip_connect", "nor_conv_3x3"])
    with pytest.raises(SpaceError, match="ops: skip_connect, nor_conv_3x3"):
        space.from_string(ALL_NONE)
    assert space.from_string(ALL_CONV3) == (1,) * 6


def test_op_subset_sets_order_and_cardinalities():
    space = NB201Space(ops=["nor_conv_3x3", "none"])
    assert space.cardinalities() == (2,) * 6
    assert space.to_string((0, 1, 0, 1, 0, 1)) == (
        "|nor_conv_3x3~0|+|none~0|nor_conv_3x3~1|+|none~0|nor_conv_3x3~1|none~2|"
    )


def test_to_string_refuses_out_of_range_genomes(space):
    with pytest.raises(SpaceError):
        space.to_string((5, 0, 0, 0, 0, 0))
    with pytest.raises(SpaceError):
        space.to_string((0,) * 5)


# -- genome operations --------------------------------------------------------------


@examples
@given(seed=seeds)
def test_a_mutation_changes_one_edge_and_every_cell_has_24_neighbours(space, seed):
    rng = np.random.default_rng(seed)
    genome = space.sample(rng)
    child = space.mutate(genome, rng)
    assert sum(a != b for a, b in zip(child, genome)) == 1
    assert len(space.neighbours(genome)) == 6 * (len(ALL_OPS) - 1)


def test_every_genome_is_valid_even_all_none(space):
    assert space.is_valid(space.from_string(ALL_NONE))
    assert space.cardinalities() == (5,) * 6


@pytest.mark.parametrize(
    "options, option",
    [
        ({"channels": 0}, "channels"),
        ({"channels": 2.5}, "channels"),
        ({"cells_per_stage": 0}, "cells_per_stage"),
        ({"ops": ["none", "conv_5x5"]}, "ops"),
        ({"ops": ["none", "none"]}, "ops"),
        ({"ops": []}, "ops"),
        ({"ops": "none"}, "ops"),
        ({"stem_stride": 3}, "stem_stride=3: must be one of 1, 2, 4"),
    ],
)
def test_bad_options_are_refused_by_name(options, option):
    with pytest.raises(SpaceError, match=option):
        NB201Space(**options)


def test_unknown_op_message_lists_the_allowed_ops():
    with pytest.raises(SpaceError, match="none, skip_connect, nor_conv_1x1, nor_conv_3x3, avg_pool_3x3"):
        NB201Space(ops=["sep_conv_3x3"])


def test_registry_builds_the_space_from_its_config():
    space = make_space({"name": "nb201", "channels": 8, "ops": ["none", "skip_connect"]})
    assert isinstance(space, NB201Space) and space.channels == 8 and space.ops == ("none", "skip_connect")


# -- networks -----------------------------------------------------------------------


def test_odd_and_small_input_sizes(tiny):
    net = tiny.build(tiny.from_string(ALL_CONV3), (1, 8, 8), 3)
    for size in range(5, 34):
        out = net(torch.randn(2, 1, size, size))
        assert out.shape == (2, 3), size
    assert net(torch.randn(2, 1, 7, 12)).shape == (2, 3)


def test_all_none_cell_gives_the_same_logits_for_every_input(tiny):
    net = tiny.build(tiny.from_string(ALL_NONE), (3, 32, 32), 10)
    for mode in (net.train, net.eval):
        mode()
        out = net(torch.randn(4, 3, 32, 32))
        assert torch.allclose(out, out[:1].expand_as(out))


def test_parameter_counts_match_the_benchmark(space):
    # NAS-Bench-201 lists 1.5316 MB for the all-3x3-conv cell and 0.0733 MB
    # for parameter-free cells (C=16, N=5, CIFAR-10).
    largest = params(space.build(space.from_string(ALL_CONV3), (3, 32, 32), 10))
    smallest = params(space.build(space.from_string(ALL_SKIP), (3, 32, 32), 10))
    assert 1.52e6 < largest < 1.54e6
    assert 0.07e6 < smallest < 0.075e6


def test_macro_skeleton_widths():
    space = NB201Space(channels=4, cells_per_stage=2)
    net = space.build(space.from_string(EXAMPLE), (3, 16, 16), 5)
    parts = [m for stage in net.backbone.body for m in stage] + list(net.head)
    assert parts[0].out_channels == 4
    assert parts[-1].in_features == 16 and parts[-1].out_features == 5
    # stem (2) + 3 stages of 2 cells + 2 reductions + BN, ReLU, pool, flatten, linear
    assert len(parts) == 2 + 6 + 2 + 5
    assert [(s.channels, s.stride) for s in net.backbone.stages] == [(4, 1), (8, 2), (16, 4)]
    strided = NB201Space(channels=4, cells_per_stage=2, stem_stride=2).build(space.from_string(EXAMPLE), (3, 16, 16), 5)
    assert [(s.channels, s.stride) for s in strided.backbone.stages] == [(4, 2), (8, 4), (16, 8)]
    assert strided.backbone(torch.zeros(1, 3, 16, 16))[0].shape == (1, 4, 8, 8)
