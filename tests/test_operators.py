import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nas.strategies.operators import (
    multi_point_crossover,
    resample_genes,
    roulette,
    swap_genes,
    tournament,
)

genomes = st.integers(2, 12).flatmap(lambda n: st.tuples(st.lists(st.integers(0, 4), min_size=n, max_size=n),
                                                          st.lists(st.integers(0, 4), min_size=n, max_size=n)))
seeds = st.integers(0, 2**32 - 1)


def test_tournament_picks_fittest_of_sample():
    fitness = [1.0, 5.0, 3.0, 4.0]
    assert tournament(fitness, 4, np.random.default_rng(0)) == 1
    # A sample of one is a uniform choice.
    picks = {tournament(fitness, 1, np.random.default_rng(s)) for s in range(50)}
    assert picks == {0, 1, 2, 3}


def test_tournament_ignores_failed_members_when_it_can():
    fitness = [-math.inf, 2.0]
    assert tournament(fitness, 2, np.random.default_rng(3)) == 1


def test_roulette_is_proportional_and_skips_failed():
    fitness = [10.0, 20.0, -math.inf, 30.0]
    rng = np.random.default_rng(0)
    counts = np.bincount([roulette(fitness, rng) for _ in range(4000)], minlength=4)
    assert counts[2] == 0
    assert counts[3] > counts[1] > counts[0]


def test_roulette_all_failed_is_uniform():
    rng = np.random.default_rng(1)
    picks = {roulette([-math.inf] * 3, rng) for _ in range(100)}
    assert picks == {0, 1, 2}


@given(genomes, seeds)
def test_crossover_children_mix_parents_gene_by_gene(pair, seed):
    a, b = tuple(pair[0]), tuple(pair[1])
    for points in (1, 2, 3):
        c, d = multi_point_crossover(a, b, points, np.random.default_rng(seed))
        assert len(c) == len(d) == len(a)
        for i in range(len(a)):
            assert {c[i], d[i]} == {a[i], b[i]}


def test_single_point_crossover_swaps_a_tail():
    a, b = (0, 0, 0, 0), (1, 1, 1, 1)
    c, d = multi_point_crossover(a, b, 1, np.random.default_rng(0))
    cut = c.index(1)
    assert c == (0,) * cut + (1,) * (4 - cut) and d == (1,) * cut + (0,) * (4 - cut)
    assert a == (0, 0, 0, 0) and b == (1, 1, 1, 1)


def test_crossover_respects_cut_points():
    a, b = (0,) * 10, (1,) * 10
    for seed in range(30):
        c, _ = multi_point_crossover(a, b, 2, np.random.default_rng(seed), cut_points=[5])
        assert c in ((0,) * 5 + (1,) * 5,)


def test_multi_point_two_cuts_swaps_middle():
    a, b = (0,) * 6, (1,) * 6
    c, d = multi_point_crossover(a, b, 2, np.random.default_rng(4))
    changes = sum(1 for i in range(1, 6) if c[i] != c[i - 1])
    assert changes == 2 and c[0] == 0 and c[-1] == 0


def test_crossover_rejects_unequal_lengths():
    with pytest.raises(ValueError, match="equal length"):
        multi_point_crossover((0, 1), (0, 1, 2), 1, np.random.default_rng(0))


@given(genomes, seeds, st.floats(0, 1))
@settings(max_examples=50)
def test_resample_genes_changes_only_within_range(pair, seed, rate):
    g = tuple(pair[0])
    cards = [5] * len(g)
    child = resample_genes(g, cards, rate, np.random.default_rng(seed))
    assert all(0 <= v < 5 for v in child)
    if rate == 0:
        assert child == g


def test_resample_genes_rate_one_changes_every_gene():
    g = (0, 1, 2, 3)
    child = resample_genes(g, [5, 5, 5, 5], 1.0, np.random.default_rng(0))
    assert all(x != y for x, y in zip(g, child))


def test_swap_genes_exchanges_two_values_of_same_range():
    g = (0, 1, 2, 2)
    child = swap_genes(g, [3, 3, 3, 3], np.random.default_rng(0))
    assert sorted(child) == sorted(g) and child != g
    assert sum(x != y for x, y in zip(g, child)) == 2
    # Genes of different ranges never swap; nothing to swap leaves it unchanged.
    assert swap_genes((0, 1), [2, 3], np.random.default_rng(0)) == (0, 1)
    assert swap_genes((1, 1, 1), [3, 3, 3], np.random.default_rng(0)) == (1, 1, 1)
