import math

import numpy as np
import pytest

from nas.spaces import make_space
from nas.strategies import Evaluated, StrategyError, make_strategy
from nas.strategies.base import fittest, population_from_state
from tests.helpers import OPS3, synthetic_score

SPACE = make_space({"name": "nb201", "ops": OPS3})


def score(genome):
    return synthetic_score([OPS3[i] for i in genome])


def evaluate(proposals, generation):
    return [
        Evaluated(f"gen_{generation:03d}/c{i:02d}", p.arch, p.genome, score(p.genome)) for i, p in enumerate(proposals)
    ]


def run(strategy_cfg, generations=8, population=8, n=6, seed=0):
    strategy = make_strategy(strategy_cfg, SPACE, population)
    state, history = strategy.initial_state(), []
    for g in range(generations):
        rng = np.random.default_rng([seed, g])
        proposals = strategy.propose(state, history, population if g == 0 else n, rng)
        results = evaluate(proposals, g)
        state = strategy.update(state, results)
        history += results
    return strategy, state, history


@pytest.mark.parametrize(
    "cfg",
    [
        {"name": "random"},
        {"name": "rea", "sample_size": 3},
        {"name": "rea", "mutation": "bitflip"},
        {"name": "ga"},
        {"name": "ga", "selection": "roulette", "crossover": "multi_point", "crossover_points": 3},
        {"name": "ga", "mutation": "swap", "mutation_rate": 0.5, "elitism": 0},
        {"name": "ga", "crossover": "none", "mutation": "space"},
        {"name": "ls"},
        {"name": "ls", "guide": "predictor", "restart": "kick", "kick": 2},
        {"name": "bananas", "pool": 30},
        {"name": "bananas", "pool": 30, "acquisition": "ucb", "encoding": "onehot"},
    ],
)
def test_strategies_never_repeat_an_architecture_and_are_reproducible(cfg):
    _, state, history = run(cfg)
    archs = [e.arch for e in history]
    assert len(archs) == len(set(archs)) == 8 + 7 * 6
    assert all(SPACE.from_string(a) == e.genome for a, e in zip(archs, history))
    _, state2, history2 = run(cfg)
    assert history == history2 and state == state2
    _, _, history3 = run(cfg, seed=1)
    assert history3 != history


@pytest.mark.parametrize(
    "cfg", [{"name": "rea", "sample_size": 4}, {"name": "ga", "tournament_size": 3}, {"name": "ls"},
            {"name": "ls", "guide": "predictor"}, {"name": "bananas", "pool": 30}]
)
def test_evolution_beats_random_on_a_smooth_landscape(cfg):
    """Averaged over seeds, guided search finds better cells than random search."""
    def best(c, seed):
        return max(e.fitness for e in run(c, generations=10, seed=seed)[2])

    evolved = np.mean([best(cfg, s) for s in range(8)])
    random = np.mean([best({"name": "random"}, s) for s in range(8)])
    assert evolved > random


def test_rea_population_ages_out_oldest():
    strategy, state, history = run({"name": "rea"}, generations=3, population=8, n=6)
    members = population_from_state(state)
    assert len(members) == 8
    assert [m.key for m in members] == [e.key for e in history[-8:]]


def test_rea_children_are_mutations_of_a_member():
    strategy = make_strategy({"name": "rea", "sample_size": 2}, SPACE, 4)
    _, state, history = run({"name": "rea", "sample_size": 2}, generations=1, population=4)
    children = strategy.propose(state, history, 5, np.random.default_rng(7))
    keys = {m.key: m for m in population_from_state(state)}
    for child in children:
        assert child.origin == "mutation" and child.parents[0] in keys
        parent = keys[child.parents[0]].genome
        assert sum(a != b for a, b in zip(parent, child.genome)) == 1


def test_ga_keeps_elites_and_fittest_children():
    strategy = make_strategy({"name": "ga", "elitism": 2}, SPACE, 4)
    old = [Evaluated(f"gen_000/c{i:02d}", f"a{i}", (i,), f) for i, f in enumerate([1.0, 9.0, 5.0, 7.0])]
    new = [Evaluated(f"gen_001/c{i:02d}", f"b{i}", (i,), f) for i, f in enumerate([3.0, 8.0, -math.inf, 2.0])]
    state = strategy.update({"population": [m.to_json() for m in old]}, new)
    assert [m.key for m in population_from_state(state)] == ["gen_000/c01", "gen_000/c03", "gen_001/c01", "gen_001/c00"]


def test_ga_tops_up_from_old_population_when_few_children():
    strategy = make_strategy({"name": "ga", "elitism": 1}, SPACE, 4)
    old = [Evaluated(f"o{i}", f"a{i}", (i,), f) for i, f in enumerate([1.0, 9.0, 5.0, 7.0])]
    new = [Evaluated("n0", "b0", (0,), 3.0)]
    state = strategy.update({"population": [m.to_json() for m in old]}, new)
    assert [m.key for m in population_from_state(state)] == ["o1", "n0", "o3", "o2"]


def test_ga_origins_name_the_operators():
    strategy = make_strategy({"name": "ga", "crossover_rate": 1.0}, SPACE, 8)
    _, state, history = run({"name": "ga", "crossover_rate": 1.0}, generations=1)
    children = strategy.propose(state, history, 6, np.random.default_rng(0))
    assert all(c.origin.startswith("crossover") and len(c.parents) == 2 for c in children)


def test_fittest_breaks_ties_by_position_and_puts_failures_last():
    members = [Evaluated(k, k, (0,), f) for k, f in [("a", 1.0), ("b", -math.inf), ("c", 1.0), ("d", 2.0)]]
    assert [m.key for m in fittest(members, 4)] == ["d", "a", "c", "b"]


def test_state_round_trips_through_json():
    import json

    _, state, _ = run({"name": "rea"}, generations=2)
    assert json.loads(json.dumps(state)) == state


def test_exhausted_space_is_a_clear_error():
    tiny = make_space({"name": "nb201", "ops": ["none"]})
    strategy = make_strategy({"name": "random"}, tiny, 2)
    with pytest.raises(StrategyError, match="exhausted"):
        strategy.propose({}, [], 2, np.random.default_rng(0))


@pytest.mark.parametrize(
    "cfg, message",
    [
        ({"name": "nope"}, "unknown strategy 'nope'"),
        ({"name": "ga", "selection": "best"}, "selection='best': choose one of: tournament, roulette"),
        ({"name": "ga", "crossover": "uniform"}, "crossover='uniform': choose one of"),
        ({"name": "ga", "mutation": "flip"}, "mutation='flip': choose one of: bitflip, swap, space"),
        ({"name": "ga", "elitism": 8}, "elitism"),
        ({"name": "rea", "elitism": 1}, "elitism"),
        ({"name": "ls", "restart": "never"}, "restart='never': choose one of: random, kick"),
        ({"name": "ls", "guide": "oracle"}, "guide='oracle': choose one of"),
        ({"name": "ls", "kick": 0}, "kick=0: must be an integer >= 1"),
    ],
)
def test_bad_strategy_options_are_named(cfg, message):
    with pytest.raises(StrategyError, match=message):
        make_strategy(cfg, SPACE, 8)


@pytest.mark.parametrize("mutation", ["bitflip", "swap", "space"])
@pytest.mark.parametrize("name", ["ga", "rea"])
def test_strategies_work_on_the_variable_length_chain_space(name, mutation):
    chain = make_space({"name": "chain", "max_layers": 5})
    strategy = make_strategy({"name": name, "mutation": mutation}, chain, 6)
    state, history = strategy.initial_state(), []
    for g in range(4):
        proposals = strategy.propose(state, history, 6, np.random.default_rng([3, g]))
        for p in proposals:
            assert chain.is_valid(p.genome) and chain.canonical(p.genome) == p.genome
            assert chain.from_string(p.arch) == p.genome
        # Deeper networks score higher, so selection has something to find.
        results = [Evaluated(f"gen_{g}/c{i}", p.arch, p.genome, float(len(chain.layers(p.genome))))
                   for i, p in enumerate(proposals)]
        state = strategy.update(state, results)
        history += results
    assert len({e.arch for e in history}) == 24


def test_local_search_climbs_to_a_neighbour_and_restarts_at_a_local_optimum():
    from nas.strategies.local_search import RESTART

    strategy = make_strategy({"name": "ls"}, SPACE, 3)
    _, state, history = run({"name": "ls"}, generations=1, population=3)
    current = Evaluated.from_json(state["current"])
    assert current.fitness == max(e.fitness for e in history)
    proposals = strategy.propose(state, history, 4, np.random.default_rng(0))
    neighbours = {SPACE.to_string(g) for g in SPACE.neighbours(current.genome)}
    assert all(p.arch in neighbours and p.origin == "neighbour" for p in proposals)
    # With every neighbour known and worse, the climb is stuck: it restarts.
    known = [Evaluated(f"n{i}", SPACE.to_string(g), g, -1.0) for i, g in enumerate(SPACE.neighbours(current.genome))]
    restart = strategy.propose(state, history + known, 2, np.random.default_rng(0))
    assert all(p.trace == RESTART for p in restart)
    moved = strategy.update(state, evaluate(restart, 5))
    assert moved["current"]["key"].startswith("gen_005")


def test_local_search_follows_known_better_neighbours_without_queries():
    strategy = make_strategy({"name": "ls"}, SPACE, 2)
    start = (0, 0, 0, 0, 0, 0)
    better = (2, 0, 0, 0, 0, 0)
    state = {"current": Evaluated("a", SPACE.to_string(start), start, 1.0).to_json()}
    history = [Evaluated("a", SPACE.to_string(start), start, 1.0), Evaluated("b", SPACE.to_string(better), better, 5.0)]
    proposals = strategy.propose(state, history, 3, np.random.default_rng(0))
    assert all(p.parents == ("b",) for p in proposals)
