"""What every registered space offers, checked on sampled genomes of each (nas/spaces/base.py).

Strings that round-trip, sample/mutate/neighbours that give valid canonical
genomes and repeat for a seed, crossover children that build, build_backbone's
stages, build = backbone + classification head, a torch-free cost() equal to
the built network's counted parameters and multiply-accumulates, describe(),
and options() that rebuild the same space. What only one space promises is in
its own test file.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from nas.evaluators.flops import count_flops, count_params
from nas.spaces import SPACES, make_space

CONFIGS = {
    "nb201": [{"name": "nb201", "channels": 4, "cells_per_stage": 1}, {"name": "nb201"},
              {"name": "nb201", "channels": 4, "cells_per_stage": 1, "stem_stride": 4}],
    "chain": [{"name": "chain", "filters": [4, 8]}, {"name": "chain", "strides": [1, 2, 3], "kernels": [1, 3, 5, 7]},
              {"name": "chain", "filters": [4, 8], "stem_stride": 2}],
}
SHAPES = [(1, 8, 8), (3, 13, 9), (3, 32, 32)]
ALL_CONFIGS = [c for cs in CONFIGS.values() for c in cs]
examples = settings(max_examples=12, deadline=None)
seeds = st.integers(0, 2**32 - 1)


def crossed(space, rng: np.random.Generator) -> tuple[int, ...]:
    """A child of two sampled genomes cut at one of the space's cut points."""
    a, b = space.sample(rng), space.sample(rng)
    cut = int(rng.choice(space.cut_points()))
    child = a[:cut] + b[cut:]
    assume(space.is_valid(child))
    return space.canonical(child)


def test_every_registered_space_is_covered():
    assert set(CONFIGS) == set(SPACES)


@pytest.mark.parametrize("cfg", ALL_CONFIGS, ids=str)
@examples
@given(seed=seeds)
def test_strings_round_trip_and_operators_give_valid_canonical_genomes(cfg, seed):
    space = make_space(cfg)
    rng = np.random.default_rng(seed)
    genome = space.sample(rng)
    arch = space.to_string(genome)
    assert space.from_string(arch) == genome and space.to_string(space.from_string(arch)) == arch
    assert space.is_valid(genome) and space.canonical(genome) == genome == space.canonical(space.canonical(genome))
    child = space.mutate(genome, rng)
    assert space.is_valid(child) and space.canonical(child) == child and space.to_string(child) != arch
    neighbours = space.neighbours(genome)
    assert child in neighbours and genome not in neighbours and len(set(neighbours)) == len(neighbours)
    assert all(space.is_valid(n) and space.canonical(n) == n for n in neighbours)
    assert neighbours == space.neighbours(genome)


@pytest.mark.parametrize("cfg", ALL_CONFIGS, ids=str)
def test_the_same_seed_draws_the_same_genomes(cfg):
    space = make_space(cfg)

    def draw(seed: int) -> list[tuple[int, ...]]:
        rng = np.random.default_rng(seed)
        genome = space.sample(rng)
        return [genome, space.mutate(genome, rng), space.sample(rng)]

    assert draw(3) == draw(3) and draw(3) != draw(4)


@pytest.mark.parametrize("cfg", ALL_CONFIGS, ids=str)
@examples
@given(seed=seeds, shape=st.sampled_from([(1, 8, 8), (3, 32, 32), (3, 5, 5)]))
def test_sampled_mutated_and_crossed_genomes_build_working_networks(cfg, seed, shape):
    space = make_space(cfg)
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed % 2**31)
    sampled = space.sample(rng)
    for genome in (sampled, space.mutate(sampled, rng), crossed(space, rng)):
        out = space.build(genome, shape, 10)(torch.randn(2, *shape))
        assert out.shape == (2, 10) and torch.isfinite(out).all()


def test_importing_the_spaces_does_not_import_torch():
    code = "import sys, nas.spaces; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


@pytest.mark.parametrize("cfg", ALL_CONFIGS, ids=str)
@examples
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
    assert space.backbone_cost(genome, shape).stages == stages
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


@pytest.mark.parametrize("cfg", ALL_CONFIGS, ids=str)
def test_options_rebuild_the_same_space_and_describe_reads(cfg):
    space = make_space(cfg)
    again = make_space({"name": space.name, **space.options()})
    assert again.options() == space.options() and again.cardinalities() == space.cardinalities()
    genome = space.sample(np.random.default_rng(1))
    assert again.to_string(genome) == space.to_string(genome)
    assert space.describe(genome)


@pytest.mark.parametrize("cfg", ALL_CONFIGS, ids=str)
def test_gene_labels_name_every_gene_and_every_value(cfg):
    space = make_space(cfg)
    labels = space.gene_labels()
    assert [len(values) for _, values in labels] == list(space.cardinalities())
    assert len({position for position, _ in labels}) == len(labels)  # positions are told apart
    assert all(len(set(values)) == len(values) for _, values in labels)


@pytest.mark.parametrize("cfg", ALL_CONFIGS, ids=str)
def test_active_genes_mark_each_gene_and_keep_every_gene_of_the_network(cfg):
    space = make_space(cfg)
    rng = np.random.default_rng(5)
    for _ in range(10):
        genome = space.sample(rng)
        active = space.active_genes(genome)
        assert len(active) == len(space.cardinalities()) and all(isinstance(a, bool) for a in active)
        # A gene marked inactive changes nothing: its network is described the same whatever it holds.
        for i in [i for i, a in enumerate(active) if not a][:3]:
            other = list(genome)
            other[i] = (other[i] + 1) % space.cardinalities()[i]
            assert space.describe(space.canonical(tuple(other))) == space.describe(space.canonical(genome))


@pytest.mark.parametrize("cfg", ALL_CONFIGS, ids=str)
def test_every_encoding_gives_one_row_of_fixed_width_per_genome(cfg):
    """A predictor's rows: as wide for every genome, equal for the same network, one-hot
    setting one column per gene, the default encoding among the kinds (joined by '+')."""
    space = make_space(cfg)
    rng = np.random.default_rng(2)
    genomes = [space.sample(rng) for _ in range(12)]
    assert all(part in space.encodings() for part in space.default_encoding.split("+"))
    for kind in (*space.encodings(), space.default_encoding):
        x = space.encode(genomes, kind)
        assert x.shape[0] == 12 and np.isfinite(x).all()
        assert np.array_equal(space.encode(genomes[:1], kind)[0], x[0])
    onehot = space.encode(genomes, "onehot")
    assert onehot.shape[1] == sum(space.cardinalities()) and (onehot.sum(1) == len(space.cardinalities())).all()


def test_the_default_gene_labels_number_genes_and_values():
    from nas.spaces.base import SearchSpace

    class Tiny(SearchSpace):
        cardinalities = lambda self: (2, 3)  # noqa: E731
        to_string = from_string = build_backbone = backbone_cost = options = lambda self, *a: None  # noqa: E731

    assert Tiny().gene_labels() == [("gene 0", ["0", "1"]), ("gene 1", ["0", "1", "2"])]


def test_nb201_cost_matches_the_benchmark_s_published_sizes():
    """Architecture 0 of NAS-Bench-201 at C=16, N=5 on CIFAR-10: 0.129306 M params, 15.64737 M FLOPs."""
    space = make_space({"name": "nb201"})
    arch = "|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|"
    assert space.cost(space.from_string(arch), (3, 32, 32), 10) == {"params": 129_306, "flops": 15_647_360}
