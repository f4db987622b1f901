"""Operation importance (nas/importance.py): one-hot ridge effects of each choice, with bootstrap intervals."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nas.importance import COLUMNS, operation_importance
from nas.spaces.nb201 import NB201Space


def labels_for(cards):
    return [(f"p{i}", [f"v{v}" for v in range(c)]) for i, c in enumerate(cards)]


def landscape(cards, n, noise, seed):
    """Genomes, scores = 80 + sum of each gene's known effect + noise, and the effects."""
    rng = np.random.default_rng(seed)
    truth = [rng.normal(0, 2, c) for c in cards]
    genomes = np.stack([rng.integers(c, size=n) for c in cards], 1)
    scores = 80 + sum(t[genomes[:, i]] for i, t in enumerate(truth)) + rng.normal(0, noise, n)
    return genomes, scores, truth


def centred_truth(genomes, truth):
    """The identifiable part of each true effect: minus its position's mean over the candidates."""
    out = []
    for i, t in enumerate(truth):
        counts = np.bincount(genomes[:, i], minlength=len(t))
        out += list(t - np.average(t, weights=counts))
    return np.array(out)


def test_an_additive_landscape_is_recovered_within_its_intervals():
    cards = [4, 4, 3, 5, 2, 4]
    genomes, scores, truth = landscape(cards, n=240, noise=0.5, seed=1)
    rows = operation_importance(genomes, scores, labels_for(cards))
    effect = np.array([r["effect"] for r in rows])
    expected = centred_truth(genomes, truth)
    assert np.abs(effect - expected).max() < 0.25  # true effects spread over about +-4 points
    inside = [r["low"] <= e <= r["high"] for r, e in zip(rows, expected)]
    assert np.mean(inside) >= 0.8  # a 90 % interval, a little narrowed by the ridge
    assert all(0 < r["std"] < 0.5 for r in rows)


def test_a_noiseless_landscape_with_a_faint_ridge_is_exact():
    cards = [3, 3, 2]
    genomes, scores, truth = landscape(cards, n=60, noise=0.0, seed=2)
    rows = operation_importance(genomes, scores, labels_for(cards), ridge=1e-9, bootstrap=5)
    assert np.allclose([r["effect"] for r in rows], centred_truth(genomes, truth), atol=1e-5)


def test_rows_name_positions_and_choices_in_genome_order():
    space = NB201Space(ops=["none", "skip_connect", "nor_conv_3x3"])
    rng = np.random.default_rng(0)
    genomes = [space.sample(rng) for _ in range(30)]
    rows = operation_importance(genomes, rng.normal(80, 3, 30), space, bootstrap=10)
    assert [(r["position"], r["choice"]) for r in rows] == [
        (position, op) for position, ops in space.gene_labels() for op in ops]
    assert rows[0]["position"] == "node1<-node0" and rows[0]["choice"] == "none"
    assert all(set(r) == set(COLUMNS) for r in rows)


def test_a_choice_no_candidate_has_gets_count_zero_and_no_effect():
    cards = [3, 2]
    genomes = [(g % 2, g // 2 % 2) for g in range(20)]  # value 2 of p0 is never drawn
    rows = operation_importance(genomes, [float(g % 5) for g in range(20)], labels_for(cards), bootstrap=20)
    absent = rows[2]
    assert (absent["choice"], absent["count"]) == ("v2", 0)
    assert all(math.isnan(absent[k]) for k in ("effect", "std", "low", "high"))
    assert [r["count"] for r in rows] == [10, 10, 0, 10, 10]


def test_the_same_seed_gives_the_same_rows():
    cards = [3, 3]
    genomes, scores, _ = landscape(cards, n=40, noise=1.0, seed=3)
    a = operation_importance(genomes, scores, labels_for(cards), seed=5)
    assert a == operation_importance(genomes, scores, labels_for(cards), seed=5)
    assert a != operation_importance(genomes, scores, labels_for(cards), seed=6)


def test_failed_candidates_count_for_nothing():
    cards = [3, 2]
    genomes, scores, _ = landscape(cards, n=30, noise=1.0, seed=4)
    clean = operation_importance(genomes, scores, labels_for(cards), bootstrap=20)
    with_failures = operation_importance([*genomes, (0, 0), (1, 1), (2, 0)], [*scores, math.nan, None, math.inf],
                                         labels_for(cards), bootstrap=20)
    assert with_failures == clean


@pytest.mark.parametrize("scores", [[], [math.nan, math.nan], [81.0, math.nan]])
def test_fewer_than_two_finite_scores_give_no_rows(scores):
    assert operation_importance([(0, 1)] * len(scores), scores, labels_for([2, 2])) == []


def test_a_genome_of_another_space_is_an_error():
    with pytest.raises(ValueError, match="outside"):
        operation_importance([(0, 2), (1, 0)], [1.0, 2.0], labels_for([2, 2]))


@settings(max_examples=25, deadline=None)
@given(cards=st.lists(st.integers(1, 4), min_size=1, max_size=4), n=st.integers(2, 40), seed=st.integers(0, 2**16))
def test_effects_average_to_zero_at_each_position(cards, n, seed):
    """Whatever the data: counts add up to the candidates, a choice's effect is known
    exactly when it has candidates, and each position's effects, weighted by their
    counts, average to zero (they say how far a choice moves from the position's average)."""
    genomes, scores, _ = landscape(cards, n, noise=1.0, seed=seed)
    rows = operation_importance(genomes, scores, labels_for(cards), bootstrap=8, seed=seed)
    start = 0
    for c in cards:
        part = rows[start:start + c]
        assert sum(r["count"] for r in part) == n
        assert all(math.isnan(r["effect"]) == (r["count"] == 0) for r in part)
        assert abs(sum(r["effect"] * r["count"] for r in part if r["count"])) < 1e-6 * (1 + np.abs(scores).max())
        assert all(r["low"] <= r["high"] for r in part if not math.isnan(r["low"]))
        start += c


# -- the pictures (nas/report.py) ----------------------------------------------------


def test_a_cell_is_read_from_its_nodes_and_anything_else_is_not():
    from nas.report import _cell_edges

    space = NB201Space()
    edges = _cell_edges(space.describe(space.from_string(
        "|nor_conv_3x3~0|+|none~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_1x1~1|skip_connect~2|")))
    assert edges == [(0, 1, "nor_conv_3x3"), (0, 2, "none"), (1, 2, "avg_pool_3x3"), (0, 3, "skip_connect"),
                     (1, 3, "nor_conv_1x1"), (2, 3, "skip_connect")]
    for other in ([{"type": "conv"}], "conv3x3", {"node1": ["op~1"]}, {"stem": ["op~0"]}, {}):
        assert _cell_edges(other) is None


def test_every_picture_is_drawn_whatever_the_space_describes(tmp_path):
    from nas.report import plot_architecture, plot_importance
    from nas.spaces.chain import ChainSpace

    class Opaque:  # a space whose describe() is neither a cell nor layers
        def describe(self, genome):
            return {"width": 3}

        def to_string(self, genome):
            return "w3-" * 50

    chain = ChainSpace()
    nb201 = NB201Space(ops=["none", "skip_connect", "nor_conv_3x3"])
    rng = np.random.default_rng(0)
    genomes = [nb201.sample(rng) for _ in range(20)]
    cases = {
        "cell": lambda p: plot_architecture(nb201, genomes[0], "cell", p),
        "layers": lambda p: plot_architecture(chain, chain.from_string("conv3x3-32-s1-relu|maxpool3-s2"), "chain", p),
        "text": lambda p: plot_architecture(Opaque(), (0,), "opaque", p),
        "bars": lambda p: plot_importance(operation_importance(genomes, rng.normal(80, 2, 20), nb201, bootstrap=20),
                                          "val_acc (%)", "importance", p),
        "empty": lambda p: plot_importance([], "val_acc (%)", "importance", p),
    }
    for name, draw in cases.items():
        draw(tmp_path / f"{name}.png")
        assert (tmp_path / f"{name}.png").read_bytes()[:4] == b"\x89PNG"


def test_genes_a_chain_layer_does_not_use_count_for_no_choice():
    from nas.spaces import make_space

    space = make_space({"name": "chain", "max_layers": 2, "min_layers": 1})
    rng = np.random.default_rng(3)
    genomes = [space.sample(rng) for _ in range(40)]
    scores = [float(g[0] + g[1]) for g in genomes]
    rows = {(r["position"], r["choice"]): r for r in operation_importance(genomes, scores, space, bootstrap=5)}
    convs = sum(space.layers(g)[0][0] == 1 + space.layer_types.index("conv") for g in genomes)
    filters = sum(r["count"] for (position, _), r in rows.items() if position == "layer1 filters")
    assert 0 < convs < len(genomes) and filters == convs  # pools have no filters
    empty = sum(len(space.layers(g)) == 1 for g in genomes)
    assert sum(r["count"] for (position, _), r in rows.items() if position == "layer2 kernel") == len(genomes) - empty
    assert sum(r["count"] for (position, _), r in rows.items() if position == "layer2 type") == len(genomes)
    assert all(math.isnan(r["effect"]) for r in rows.values() if r["count"] == 0)
