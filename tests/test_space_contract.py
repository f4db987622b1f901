"""What every registered space offers, checked on sampled genomes of each (nas/spaces/base.py).

build_backbone's stages, build = backbone + classification head, a torch-free
cost() equal to the built network's counted parameters and multiply-accumulates,
describe(), and options() that rebuild the same space.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from nas.evaluators.flops import count_flops, count_params
from nas.spaces import SPACES, make_space

CONFIGS = {
    "nb201": [{"name": "nb201", "channels": 4, "cells_per_stage": 1}, {"name": "nb201"}],
    "chain": [{"name": "chain", "filters": [4, 8]}, {"name": "chain", "strides": [1, 2, 3], "kernels": [1, 3, 5, 7]}],
}
SHAPES = [(1, 8, 8), (3, 13, 9), (3, 32, 32)]


def test_every_registered_space_is_covered():
    assert set(CONFIGS) == set(SPACES)


@pytest.mark.parametrize("cfg", [c for cs in CONFIGS.values() for c in cs], ids=lambda c: str(c))
@settings(max_examples=12, deadline=None)
@given(seed=st.integers(0, 2**31), shape=st.sampled_from(SHAPES), classes=st.integers(2, 12))
def test_cost_equals_the_built_network_and_the_backbone_is_its_body(cfg, seed, shape, classes):
    space = make_space(cfg)
    genome = space.sample(np.random.default_rng(seed))
    torch.manual_seed(0)
    model = space.build(genome, shape, classes)
    assert space.cost(genome, shape, classes) == {"params": count_params(model), "flops": count_flops(model, shape)}
    x = torch.randn(2, *shape)
    model.eval()
    with torch.no_grad():
        logits = model(x)
        features = model.backbone(x)
    assert logits.shape == (2, classes)
    stages = model.backbone.stages
    assert len(features) == len(stages) >= 1
    strides = [s.stride for s in stages]
    assert strides == sorted(strides) and strides[0] >= 1
    for feature, stage in zip(features, stages):
        assert feature.shape[:2] == (2, stage.channels)
        assert feature.shape[2] == -(-shape[1] // stage.stride) and feature.shape[3] == -(-shape[2] // stage.stride)
    # The same seed gives the same network built as backbone alone.
    torch.manual_seed(0)
    alone = space.build_backbone(genome, shape)
    assert all(torch.equal(a, b) for a, b in zip(alone.state_dict().values(), model.backbone.state_dict().values()))


@pytest.mark.parametrize("cfg", [c for cs in CONFIGS.values() for c in cs], ids=lambda c: str(c))
def test_options_rebuild_the_same_space_and_describe_reads(cfg):
    space = make_space(cfg)
    again = make_space({"name": space.name, **space.options()})
    assert again.options() == space.options() and again.cardinalities() == space.cardinalities()
    genome = space.sample(np.random.default_rng(1))
    assert again.to_string(genome) == space.to_string(genome)
    assert space.describe(genome)


def test_nb201_cost_matches_the_benchmark_s_published_sizes():
    """Architecture 0 of NAS-Bench-201 at C=16, N=5 on CIFAR-10: 0.129306 M params, 15.64737 M FLOPs."""
    space = make_space({"name": "nb201"})
    arch = "|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|"
    assert space.cost(space.from_string(arch), (3, 32, 32), 10) == {"params": 129_306, "flops": 15_647_360}
