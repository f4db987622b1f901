"""The predictor door (nas/predictors.py), the spaces' encodings and the strategy that
needs both, bananas (nas/strategies/bananas.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import yaml

from nas.config import resolve_runs
from nas.io import tsv_text
from nas.predictors import EnsemblePredictor, RidgePredictor
from nas.runner import run_in_process
from nas.search import columns
from nas.spaces import SpaceError
from nas.spaces.nb201 import ALL_OPS, NB201Space
from nas.strategies import Evaluated, StrategyError, make_strategy
from nas.strategies.bananas import expected_improvement
from nas.strategies.predictor import LinearPredictor
from tests.helpers import OPS3, REPO, load_script, nb201_arch, snakemake, synthetic_score, table_run, write_config

SPACE = NB201Space()


def _path_columns(arch: str, space: NB201Space = SPACE) -> list[int]:
    return np.flatnonzero(space.encode([space.from_string(arch)], "path")[0]).tolist()


def test_the_path_encoding_of_cells_worked_by_hand():
    # Ops other than none, in the space's order: skip 0, conv1x1 1, conv3x3 2, avg_pool 3 (k = 4):
    # 4 columns of one-op paths, then 16 of two ops, then 64 of three.
    assert SPACE.encode([(0,) * 6], "path").shape == (1, 4 + 16 + 64)
    assert _path_columns(nb201_arch(["none"] * 6)) == []
    # Only the direct edge 0->3 carries a path: avg_pool (digit 3).
    assert _path_columns(nb201_arch(["none", "none", "none", "avg_pool_3x3", "none", "none"])) == [3]
    # 0->1->3 (conv3x3, conv1x1) = 4 + 2*4 + 1 and 0->2->3 (skip, skip) = 4 + 0; 1->2 is none,
    # so 0->1->2->3 carries nothing, and 0->3 is none.
    cell = nb201_arch(["nor_conv_3x3", "skip_connect", "none", "none", "nor_conv_1x1", "skip_connect"])
    assert _path_columns(cell) == [4, 13]
    # Every edge skip: all four routes, two of them the same sequence (skip, skip).
    assert _path_columns(nb201_arch(["skip_connect"] * 6)) == [0, 4, 20]


def test_the_path_encoding_follows_the_spaces_op_order():
    """A relabelled space numbers the same paths differently: a permutation of columns."""
    other = NB201Space(ops=list(reversed(ALL_OPS)))
    cells = [SPACE.sample(np.random.default_rng(i)) for i in range(30)]
    mine = SPACE.encode(cells, "path")
    theirs = other.encode([other.from_string(SPACE.to_string(c)) for c in cells], "path")
    assert sorted(map(tuple, mine.T.tolist())) == sorted(map(tuple, theirs.T.tolist()))
    assert (mine.sum(1) == theirs.sum(1)).all()


def test_encodings_are_named_and_joined():
    cells = [(0, 1, 2, 3, 4, 0)]
    assert SPACE.encodings() == ("path", "onehot", "pairs")
    onehot = SPACE.encode(cells, "onehot")
    assert onehot.shape == (1, 30) and onehot.sum() == 6
    assert SPACE.encode(cells, "path+onehot").shape == (1, 84 + 30)
    assert SPACE.encode(cells, "pairs").shape == (1, 15 * 25)
    with pytest.raises(SpaceError, match="no encoding 'adjacency'; choose one of: path, onehot, pairs"):
        SPACE.encode(cells, "adjacency")


def _toy(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    x = np.random.default_rng(seed).uniform(-1, 1, (n, 2))
    return x, np.sin(3 * x[:, 0]) + x[:, 1] ** 2


def test_the_ensemble_fits_a_toy_function_and_is_unsure_away_from_its_data():
    x, y = _toy(80, 0)
    model = EnsemblePredictor(members=5, epochs=300, seed=0).fit(x, y)
    mean, std = model.predict(x)
    assert np.abs(mean - y).mean() < 0.1
    test, truth = _toy(200, 1)
    assert np.corrcoef(model.predict(test)[0], truth)[0, 1] > 0.9
    far = np.array([[6.0, -6.0], [-6.0, 6.0]])
    assert model.predict(far)[1].min() > 3 * std.mean()
    # The same seed and rows give the same fit; another seed another one.
    assert np.array_equal(EnsemblePredictor(seed=0, epochs=300).fit(x, y).predict(test)[0],
                          model.predict(test)[0])
    assert not np.array_equal(EnsemblePredictor(seed=1, epochs=300).fit(x, y).predict(test)[0],
                              model.predict(test)[0])


def test_the_ensembles_gradients_are_the_finite_differences():
    x, _ = _toy(20, 2)
    model = EnsemblePredictor(members=3, hidden=(6, 5), epochs=0, seed=3).fit(x, np.zeros(20))
    out, inputs = model._forward(x)
    grads = [np.zeros_like(p) for p in model._params]
    model._backward(np.ones_like(out)[:, :, None], inputs, grads)  # d(sum of outputs)
    base, eps = out.sum(), 1e-6
    for k, p in enumerate(model._params):
        index = tuple(int(i) for i in np.unravel_index(np.argmax(np.abs(grads[k])), p.shape))
        p[index] += eps
        assert (model._forward(x)[0].sum() - base) / eps == pytest.approx(grads[k][index], rel=1e-4, abs=1e-6)
        p[index] -= eps


def test_row_weights_move_the_fit_towards_the_heavy_rows():
    x = np.array([[0.0], [0.0]])
    y = np.array([0.0, 1.0])
    light, heavy = (RidgePredictor(1e-6).fit(x, y, np.array(w)).predict([[0.0]])[0][0] for w in ([1, 1], [1, 9]))
    assert light == pytest.approx(0.5) and heavy == pytest.approx(0.9)
    with pytest.raises(ValueError, match="weights"):
        RidgePredictor().fit(x, y, np.array([1.0, -1.0]))


def test_ridge_is_the_closed_form_with_a_posterior_std():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 3))
    y = x @ np.array([1.0, -2.0, 0.5]) + 0.1 * rng.normal(size=40)
    model = RidgePredictor(0.1).fit(x, y)
    offset = y.mean()
    closed = np.linalg.solve(x.T @ x + 0.1 * np.eye(3), x.T @ (y - offset))
    assert np.allclose(model.coefficients, closed) and model.offset == pytest.approx(offset)
    near, far = model.predict(np.array([[0.0, 0.0, 0.0], [30.0, 30.0, -30.0]]))[1]
    assert model.noise == pytest.approx(near, rel=0.05) and far > 5 * near
    restored = RidgePredictor.restored(model.coefficients, model.offset)
    mean, std = restored.predict(x[:3])
    assert np.allclose(mean, model.predict(x[:3])[0]) and np.isnan(std).all()


def test_the_linear_predictor_learns_an_additive_landscape_and_skips_failures():
    space = NB201Space(ops=OPS3)
    rng = np.random.default_rng(1)
    genomes = [space.sample(rng) for _ in range(80)]
    truth = lambda g: float(sum((i + 1) * v for i, v in enumerate(g)))  # noqa: E731
    fitness = [truth(g) for g in genomes]
    fitness[0] = -math.inf
    predicted = LinearPredictor(space, ridge=0.01).fit(genomes, fitness).predict(genomes[1:])
    assert np.allclose(predicted, [truth(g) for g in genomes[1:]], atol=0.05)
    flat = LinearPredictor(space).fit(genomes[:1], [-math.inf]).predict(genomes[:3])
    assert np.all(flat == flat[0])


def test_expected_improvement():
    ei = expected_improvement(np.array([1.0, 1.0, 2.0, 0.0]), np.array([0.0, 1.0, 0.0, 1.0]), 1.0)
    assert ei[0] == 0.0 and ei[1] == pytest.approx(1 / math.sqrt(2 * math.pi)) and ei[2] == 1.0
    assert 0 < ei[3] < ei[1]


# -- the strategy -------------------------------------------------------------------------------


def _history(space: NB201Space, n: int, seed: int) -> list[Evaluated]:
    """n distinct random cells of a three-op space, scored by the synthetic landscape."""
    rng = np.random.default_rng(seed)
    genomes = list(dict.fromkeys(space.sample(rng) for _ in range(3 * n)))[:n]
    return [Evaluated(f"gen_000/c{i:02d}", space.to_string(g), g, synthetic_score([space.ops[v] for v in g]))
            for i, g in enumerate(genomes)]


@pytest.mark.parametrize("options", [{}, {"acquisition": "ei"}, {"acquisition": "ucb", "beta": 2.0},
                                     {"predictor": "ridge", "encoding": "path+onehot"}])
def test_a_generation_is_new_distinct_and_the_same_again(options):
    space = NB201Space(ops=OPS3)
    strategy = make_strategy({"name": "bananas", "pool": 30, **options}, space, 8)
    history = _history(space, 12, 0)
    first = strategy.proposals({}, history, 6, np.random.default_rng(5))
    again = strategy.proposals({}, history, 6, np.random.default_rng(5))
    assert [p.arch for p in first] == [p.arch for p in again]
    archs = [p.arch for p in first]
    assert len(set(archs)) == 6 and not set(archs) & {e.arch for e in history}
    # Candidates are mutations of the best results so far.
    best = {e.key for e in sorted(history, key=lambda e: -e.fitness)[:strategy.parents]}
    assert all(p.origin == "mutation" and set(p.parents) <= best for p in first)


def test_the_options_are_filled_in_and_checked():
    strategy = make_strategy({"name": "bananas"}, SPACE, 8)
    assert strategy.options() == {"acquisition": "its", "encoding": "path+onehot", "predictor": "ensemble", "members": 5,
                                  "pool": 200, "parents": 10, "edits": 1, "beta": 1.0, "target": "rank"}
    with pytest.raises(StrategyError, match="bananas option encoding='adjacency': choose one of: path, onehot"):
        make_strategy({"name": "bananas", "encoding": "onehot+adjacency"}, SPACE, 8)
    with pytest.raises(StrategyError, match="acquisition='pi'"):
        make_strategy({"name": "bananas", "acquisition": "pi"}, SPACE, 8)
    with pytest.raises(StrategyError, match="one objective"):
        make_strategy({"name": "bananas"}, SPACE, 8).check_objectives([{"metric": "val_acc"}, {"metric": "params"}])


def test_a_search_never_repeats_an_architecture_and_finds_the_top(nb201_table):
    run = table_run(nb201_table, strategy={"name": "bananas", "pool": 50}, generations=12, population=8, candidates=4)
    run = resolve_runs({"runs": {"b": run}})["b"]
    rows = run_in_process(run)
    archs = [r["arch"] for r in rows]
    assert len(rows) == 8 + 11 * 4 and len(set(archs)) == len(archs)
    # 52 of the 729 cells: the synthetic landscape's best (every edge a 3x3 conv) is found.
    assert max(r["val_acc"] for r in rows) == round(synthetic_score(["nor_conv_3x3"] * 6), 3)
    assert run_in_process(run) == rows


def test_bananas_through_the_workflow(tmp_path, nb201_table):
    runs = {"b": table_run(nb201_table, strategy={"name": "bananas", "pool": 30}, generations=3)}
    config = write_config(tmp_path / "config.yaml", runs)
    snakemake(tmp_path, "--configfile", str(config))
    run = resolve_runs(yaml.safe_load(config.read_text()))["b"]
    assert run["strategy"]["encoding"] == "path+onehot"
    history = (tmp_path / "results" / "b" / "history.tsv").read_text()
    assert history == tsv_text(columns(run), run_in_process(run))
    assert history.count("\n") == 1 + 6 + 2 * 4


def test_the_digits_comparison_runs_the_default_search_with_each_strategy():
    """scripts/digits_strategies.py: equal trainings, only strategy and seed differ."""
    made = load_script("digits_strategies").config(["rea", "bananas"], 2)
    runs = resolve_runs(made)
    assert sorted(runs) == ["bananas-s0", "bananas-s1", "rea-s0", "rea-s1"]
    default = yaml.safe_load((REPO / "config" / "config.yaml").read_text())["defaults"]
    for name, run in runs.items():
        assert run["strategy"]["name"] == name.split("-")[0] and run["seed"] == int(name[-1])
        assert (run["population"], run["candidates"], run["generations"]) == \
            (default["population"], default["candidates"], default["generations"])
        assert run["task"] == runs["rea-s0"]["task"] and run["training"] == runs["rea-s0"]["training"]
