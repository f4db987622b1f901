"""REINFORCE: generate and edit formulations, state files, determinism."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from nas.io import ArtefactError
from nas.spaces import make_space
from nas.strategies import Evaluated, StrategyError, make_strategy
from nas.strategies.policy_gradient import EDIT_KINDS
from tests.conftest import OPS3, synthetic_score

NB201 = make_space({"name": "nb201", "ops": OPS3})
CHAIN = make_space({"name": "chain", "max_layers": 4, "filters": [4, 8, 16], "kernels": [1, 3]})


def nb201_score(genome):
    return synthetic_score([OPS3[i] for i in genome])


def chain_score(genome):
    """Learnable: more conv layers and wider filters are better."""
    return sum(10.0 + 2.0 * layer[2] for layer in CHAIN.layers(genome) if layer[0] == 1)


def search(cfg, space, score, generations=6, n=8, seed=0, reload_state=None):
    strategy = make_strategy(cfg, space, n)
    state, history, batches = strategy.initial_state(), [], []
    for g in range(generations):
        proposals = strategy.propose(state, history, n, np.random.default_rng([seed, g]))
        results = [Evaluated(f"gen_{g:03d}/c{i:02d}", p.arch, p.genome, score(p.genome), p.trace)
                   for i, p in enumerate(proposals)]
        state = strategy.update(state, results)
        if reload_state is not None:
            state = reload_state(strategy, state, g)
        history += [Evaluated(r.key, r.arch, r.genome, r.fitness) for r in results]
        batches.append(results)
    return strategy, state, batches


@pytest.mark.parametrize("controller", ["mlp", "lstm"])
def test_generate_learns_a_smooth_landscape(controller):
    lr = 0.3 if controller == "mlp" else 0.05
    cfg = {"name": "reinforce", "controller": controller, "lr": lr}
    early, late = [], []
    for seed in range(3):
        _, _, batches = search(cfg, NB201, nb201_score, generations=12, seed=seed)
        early += [r.fitness for b in batches[:2] for r in b]
        late += [r.fitness for b in batches[-3:] for r in b]
    assert np.mean(late) > np.mean(early) + 3


def test_policy_state_survives_files_exactly(tmp_path):
    def through_files(strategy, state, g):
        folder = tmp_path / f"g{g}"
        folder.mkdir()
        strategy.save_state(state, folder)
        assert (folder / "policy.pt").is_file() and (folder / "state.json").is_file()
        return strategy.load_state(folder)

    for cfg, space, score in [
        ({"name": "reinforce", "controller": "lstm"}, NB201, nb201_score),
        ({"name": "reinforce", "formulation": "edit"}, CHAIN, chain_score),
    ]:
        _, _, in_memory = search(cfg, space, score, generations=4)
        _, _, from_files = search(cfg, space, score, generations=4, reload_state=through_files)
        assert [[r.arch for r in b] for b in in_memory] == [[r.arch for r in b] for b in from_files]
        tmp_path = tmp_path / "next"
        tmp_path.mkdir()


def test_same_seed_same_proposals_other_seed_other_ones():
    cfg = {"name": "reinforce"}
    a = search(cfg, NB201, nb201_score, generations=3)[2]
    b = search(cfg, NB201, nb201_score, generations=3)[2]
    c = search(cfg, NB201, nb201_score, generations=3, seed=1)[2]
    archs = lambda batches: [r.arch for batch in batches for r in batch]  # noqa: E731
    assert archs(a) == archs(b) != archs(c)
    assert len(set(archs(a))) == len(archs(a))


def test_failed_candidates_keep_the_policy_finite():
    strategy = make_strategy({"name": "reinforce", "controller": "lstm"}, NB201, 4)
    state = strategy.initial_state()
    proposals = strategy.propose(state, [], 4, np.random.default_rng(0))
    results = [Evaluated(f"c{i}", p.arch, p.genome, -math.inf if i % 2 else 70.0) for i, p in enumerate(proposals)]
    state = strategy.update(state, results)
    assert all(torch.isfinite(v).all() for v in state["policy"].values())
    all_failed = [Evaluated(r.key, r.arch, r.genome, -math.inf) for r in results]
    state = strategy.update(state, all_failed)
    assert all(torch.isfinite(v).all() for v in state["policy"].values()) and state["epoch"] == 2


def test_edit_episodes_replay_to_their_candidates_and_improve():
    strategy, _, batches = search({"name": "reinforce", "formulation": "edit"}, CHAIN, chain_score,
                                  generations=10, n=6)
    for batch in batches:
        for r in batch:
            assert CHAIN.is_valid(r.genome) and CHAIN.canonical(r.genome) == r.genome
            if r.trace is None:  # drawn at random by fill(): nothing to replay
                continue
            genome = tuple(r.trace["start"])
            for action in r.trace["actions"]:
                if EDIT_KINDS[action[0]] != "stop":
                    genome = strategy._apply(genome, action)
            assert genome == r.genome
            assert len(r.trace["actions"]) <= strategy.max_edits
    first = np.mean([r.fitness for r in batches[0]])
    last = np.mean([r.fitness for b in batches[-3:] for r in b])
    assert last > first + 10


@pytest.mark.parametrize(
    "cfg, space, message",
    [
        ({"formulation": "edit"}, NB201, "needs a space of layers"),
        ({"formulation": "mutate"}, NB201, "unknown formulation"),
        ({"controller": "gru"}, NB201, "unknown controller"),
        ({"gamma": 0.0}, NB201, "gamma"),
        ({"baseline_decay": 1.0}, NB201, "baseline_decay"),
        ({"lr": -1}, NB201, "lr"),
    ],
)
def test_bad_options_are_named(cfg, space, message):
    with pytest.raises(StrategyError, match=message):
        make_strategy({"name": "reinforce", **cfg}, space, 4)


def test_broken_policy_file_is_reported(tmp_path):
    strategy = make_strategy({"name": "reinforce"}, NB201, 4)
    with pytest.raises(ArtefactError, match="policy.pt: file not found"):
        strategy.load_state(tmp_path)
    (tmp_path / "policy.pt").write_bytes(b"\x80\x04truncated")
    with pytest.raises(ArtefactError, match="not a readable policy file"):
        strategy.load_state(tmp_path)
