"""Zero-cost proxies (nas/evaluators/zero_cost.py), the proxy evaluator, and screens:
values checked by hand on tiny networks, determinism, and the screen job through
the real workflow, killed and resumed."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from nas import layout, search
from nas.config import ConfigError, proposals_in, resolve_runs
from nas.evaluators import evaluator_for
from nas.evaluators.proxy import PROXIES, proxy_metric, proxy_of
from nas.evaluators.zero_cost import grad_norm, jacov_score, naswot, naswot_kernel, naswot_score, snip, synflow
from nas.io import read_tsv, tsv_text
from nas.runner import run_in_process
from nas.strategies.base import best_first, pool_size
from nas.tasks import task_for
from tests.helpers import kill_when, snakemake, write_config
from tests.test_resume import without_timing

TINY = {
    "seed": 3,
    "generations": 2,
    "population": 2,
    "candidates": 2,
    "space": {"name": "nb201", "channels": 4, "cells_per_stage": 1},
    "task": {"name": "digits", "train_size": 40, "val_size": 40},
    "training": {"epochs": 1, "batch_size": 20},
}


def chain(with_bn: bool = False) -> nn.Module:
    """Linear(3, 2) -> [BN] -> ReLU -> Linear(2, 1) with fixed weights, some negative."""
    first, last = nn.Linear(3, 2), nn.Linear(2, 1)
    with torch.no_grad():
        first.weight.copy_(torch.tensor([[0.5, -1.0, 2.0], [-0.25, 0.75, 1.5]]))
        first.bias.copy_(torch.tensor([0.1, -0.2]))
        last.weight.copy_(torch.tensor([[-3.0, 0.5]]))
        last.bias.copy_(torch.tensor([0.7]))
    layers = [first, *([nn.BatchNorm1d(2)] if with_bn else []), nn.ReLU(), last]
    return nn.Sequential(*layers)


def test_synflow_of_a_linear_chain_equals_the_hand_computation():
    w1, b1 = np.abs([[0.5, -1.0, 2.0], [-0.25, 0.75, 1.5]]), np.abs([0.1, -0.2])
    w2 = np.abs([-3.0, 0.5])
    # Input ones, every parameter positive: R = w2 . (w1 1 + b1) + b2, so
    # dR/dw1[i, j] = w2[i] and dR/dw2[i] = hidden unit i.
    hidden = w1.sum(axis=1) + b1
    expected = float((w1 * w2[:, None]).sum() + (w2 * hidden).sum())
    assert synflow(chain(), (3,)) == pytest.approx(expected, rel=1e-7)  # float32 weights
    # Batch norm is taken out (Abdelfattah et al.), whatever its statistics say.
    with_bn = chain(with_bn=True)
    with torch.no_grad():
        with_bn[1].running_var.fill_(4.0)
        with_bn[1].weight.fill_(-2.0)
    assert synflow(with_bn, (3,)) == pytest.approx(expected, rel=1e-7)  # float32 weights


def test_synflow_leaves_the_network_as_it_was_and_is_float64():
    model = chain()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    value = synflow(model, (3,))
    assert all(torch.equal(before[k], v) and v.dtype == torch.float32 for k, v in model.state_dict().items())
    # Weights of 10 across 40 layers: float32 would overflow (1e40 > 3.4e38).
    deep = nn.Sequential(*[nn.Linear(2, 2, bias=False) for _ in range(40)])
    for layer in deep:
        nn.init.constant_(layer.weight, 10.0)
    assert math.isfinite(synflow(deep, (2,))) and synflow(deep, (2,)) > 1e40 and value > 0


def test_naswot_kernel_and_score_on_hand_made_codes():
    codes = torch.tensor([[1, 0, 1], [1, 1, 0], [0, 0, 1]])
    # K[i, j] = units where i and j agree = 3 - Hamming distance.
    assert naswot_kernel(codes).tolist() == [[3, 1, 2], [1, 3, 0], [2, 0, 3]]
    assert naswot_score(naswot_kernel(codes)) == pytest.approx(math.log(12))  # det by cofactors
    # Two images with the same code: the kernel is singular, the worst score.
    assert naswot_score(naswot_kernel(torch.tensor([[1, 0], [1, 0]]))) == -math.inf


def test_naswot_of_a_network_reads_the_sign_of_every_activation_input():
    model = chain()
    x = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, -1.0]])
    codes = (model[0](x) > 0).int()  # the one ReLU's input
    assert naswot(model, x) == pytest.approx(naswot_score(naswot_kernel(codes)))


def test_jacov_score_by_hand():
    k = 1e-5
    # Uncorrelated rows: every eigenvalue of the correlation matrix is 1.
    rows = np.array([[1.0, -1.0, 0.0, 0.0], [0.0, 0.0, 1.0, -1.0]])
    assert jacov_score(rows) == pytest.approx(-2 * (math.log(1 + k) + 1 / (1 + k)))
    # Two rows of correlation r: the eigenvalues are 1 + r and 1 - r; near r = 1 the score plunges.
    rows = np.array([[1.0, 2.0, 3.0], [2.0, 4.0, 6.5]])
    r = float(np.corrcoef(rows)[0, 1])
    assert jacov_score(rows) == pytest.approx(-sum(math.log(v + k) + 1 / (v + k) for v in (1 + r, 1 - r)))
    assert jacov_score(rows) < -100
    # A constant row (a network whose output ignores its input) has no correlation.
    assert math.isnan(jacov_score(np.array([[1.0, 1.0, 1.0], [0.0, 1.0, 2.0]])))


def test_grad_norm_and_snip_equal_the_analytic_gradient_of_cross_entropy():
    torch.manual_seed(0)
    model = nn.Linear(3, 2, bias=False)
    x, y = torch.randn(4, 3), torch.tensor([0, 1, 1, 0])
    task = task_for({"name": "digits"})  # a classification task: its loss is cross-entropy
    w = model.weight.detach().numpy().astype(float)
    logits = x.numpy() @ w.T
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    p[np.arange(4), y.numpy()] -= 1
    grad = p.T @ x.numpy() / 4  # dL/dW of the mean cross-entropy
    recipe = {"label_smoothing": 0.0}
    assert grad_norm(model, task, (x, y), recipe) == pytest.approx(np.linalg.norm(grad), rel=1e-5)
    assert snip(model, task, (x, y), recipe) == pytest.approx(np.abs(w * grad).sum(), rel=1e-5)


def proxy_run(**overrides):
    cfg = {**TINY, "evaluator": {"name": "proxy", "proxies": list(PROXIES), "batch_size": 16}, **overrides}
    return resolve_runs({"runs": {"zc": cfg}})["zc"]


def test_the_proxy_evaluator_columns_primary_and_determinism():
    run = proxy_run()
    evaluator = evaluator_for(run)
    assert run["objectives"] == [{"metric": "zc_synflow", "direction": "max"}]
    assert evaluator.columns[:1 + len(PROXIES)] == ("status", *map(proxy_metric, PROXIES))
    assert run["task_id"].startswith("proxy:zc_synflow digits")  # not pooled with trained accuracies
    first = run_in_process(run, generations=1)
    again = run_in_process(run, generations=1)
    assert without_timing_rows(first) == without_timing_rows(again)
    for row in first:
        assert row["status"] == "ok" and row["zc_params"] == row["params"] and row["zc_flops"] == row["flops"]
        assert all(math.isfinite(row[proxy_metric(p)]) for p in PROXIES if p != "jacov")


def without_timing_rows(rows):
    return [{k: v for k, v in r.items() if k != "train_seconds"} for r in rows]


@pytest.mark.parametrize("evaluator, message", [
    ({"name": "proxy", "proxies": ["synflow", "zen"]}, "evaluator.proxies"),
    ({"name": "proxy", "proxies": []}, "evaluator.proxies"),
    ({"name": "proxy", "batch_size": 1}, "evaluator.batch_size"),
])
def test_bad_proxy_settings_are_refused_naming_the_key(evaluator, message):
    with pytest.raises(ConfigError, match=message):
        resolve_runs({"runs": {"r": {**TINY, "evaluator": evaluator}}})


@pytest.mark.parametrize("extra, message", [
    ({"training": {"repeats": 2}}, "training.repeats: 2 trainings per candidate, but evaluator 'proxy' scores"),
    ({"final": {"top": 2}}, "final: evaluator 'proxy' scores untrained networks, it trains no network"),
])
def test_a_proxy_run_refuses_what_needs_training(extra, message):
    with pytest.raises(ConfigError, match=message):
        resolve_runs({"runs": {"r": {**TINY, "evaluator": {"name": "proxy"}, **extra}}})


def test_pool_size_and_best_first():
    assert [pool_size(n, keep) for n, keep in ((5, 0.25), (3, 1 / 3), (2, 1.0), (1, 0.9))] == [20, 9, 2, 1]
    assert best_first([1.0, math.nan, 3.0, 3.0, -math.inf], 4) == [2, 3, 0, 4]


def test_screen_keeps_the_best_proposals_renamed_and_seeded_as_their_places():
    run = resolve_runs({"runs": {"r": {**TINY, "screen": {"by": "zc_snip", "keep": 0.5}}}})["r"]
    assert run["screen"] == {"by": "zc_snip", "keep": 0.5, "batch_size": 64} and proposals_in(run, 1) == 4
    proposals = [{"candidate": layout.proposal_name(i), "arch": f"a{i}", "origin": "mutation", "seed": i}
                 for i in range(4)]
    scores = [{"status": "ok", "zc_snip": 1.0}, {"status": "oom"}, {"status": "ok", "zc_snip": 5.0},
              {"status": "ok", "zc_snip": None}]
    specs, rows = search.screen(run, 1, proposals, scores)
    unscreened = search.propose(resolve_runs({"runs": {"r": TINY}})["r"], 1, {}, [],
                                _Fixed(["x", "y"]))
    assert [s["arch"] for s in specs] == ["a2", "a0"]
    assert [(s["candidate"], s["seed"]) for s in specs] == [(u["candidate"], u["seed"]) for u in unscreened]
    assert specs[0]["screened"] == {"proposal": "p002", "zc_snip": 5.0}
    assert [r["candidate"] for r in rows] == ["c01", None, "c00", None]


class _Fixed:
    """A stand-in strategy proposing fixed architectures (only their names and seeds matter)."""

    def __init__(self, archs):
        self.archs = archs

    def proposals(self, state, history, n, rng):
        from nas.strategies.base import Proposal

        return [Proposal((0,) * 6, a, "random") for a in self.archs[:n]]


@pytest.mark.parametrize("screen, message", [
    ({"by": "zc_zen", "keep": 0.5}, "screen.by: 'zc_zen' is not a screen"),
    ({"by": "meta", "keep": 0.5}, "add warm_start"),
    ({"by": "predictor", "keep": 0.5, "batch_size": 8}, "screen.batch_size"),
    ({"by": "zc_synflow", "keep": 1.5}, "screen.keep: must be <= 1"),
])
def test_bad_screens_are_refused_naming_the_key(screen, message):
    with pytest.raises(ConfigError, match=message):
        resolve_runs({"runs": {"r": {**TINY, "screen": screen}}})


def test_a_proxy_screen_needs_a_data_task(nb201_table):
    from tests.helpers import table_run

    with pytest.raises(ConfigError, match="screen by predictor"):
        resolve_runs({"runs": {"r": table_run(nb201_table, screen={"by": "zc_synflow", "keep": 0.5})}})


def test_the_old_filter_key_is_refused_naming_its_replacement():
    with pytest.raises(ConfigError, match=r"warm_start.filter: replaced .*screen: \{by: meta, keep: 0.25\}"):
        resolve_runs({"runs": {"r": {**TINY, "warm_start": {"model": "m", "filter": 4}}}})


def test_the_digits_comparison_screens_only_the_screened_variant():
    from tests.helpers import load_script

    made = load_script("digits_strategies").config(["rea", "rea+zc_naswot"], 1)
    runs = resolve_runs(made)
    assert "screen" not in runs["rea-s0"] and runs["rea-zc_naswot-s0"]["screen"]["by"] == "zc_naswot"
    assert {k: v for k, v in runs["rea-s0"].items() if k != "name"} == \
        {k: v for k, v in runs["rea-zc_naswot-s0"].items() if k not in ("name", "screen")}


def test_proxy_of_names():
    assert proxy_of("zc_naswot") == "naswot" and proxy_of("zc_zen") is None and proxy_of("val_acc") is None


def test_screen_job_killed_then_resumed_equals_the_in_process_search(tmp_path):
    """The real workflow, a screened run (propose writes 4 proposals a generation,
    the screen job keeps 2), killed while a screen job runs: after --unlock and
    the same command, history.tsv is the in-process search's. Screened by
    params, the one proxy that builds no network, to keep the test short: the
    steps and files are the same for every proxy, and the network proxies'
    scores are checked in process above (one function serves both)."""
    cfg = {**TINY, "screen": {"by": "zc_params", "keep": 0.5}}
    write_config(tmp_path / "config.yaml", {"tiny": cfg})
    run = layout.run_dir("tiny")
    log = tmp_path / layout.log(run, "screen", 1)
    kill_when(tmp_path, log, layout.history(run), "--configfile", "config.yaml")
    assert log.exists() and not (tmp_path / layout.candidates_dir(run, 1)).exists(), "the screen was not caught"
    snakemake(tmp_path, "--configfile", "config.yaml", "--unlock")
    snakemake(tmp_path, layout.history(run), "--configfile", "config.yaml")

    screened = read_tsv(tmp_path / layout.screen_table(run, 1))
    assert len(screened) == 4 and sorted(r["candidate"] for r in screened if r["candidate"]) == ["c00", "c01"]
    resolved = resolve_runs({"runs": {"tiny": cfg}})["tiny"]
    expected = tsv_text(search.columns(resolved), run_in_process(resolved))
    assert without_timing((tmp_path / layout.history(run)).read_text()) == without_timing(expected)
