"""Meta-learning: task features, knowledge base, meta-model, warm start (nas/meta/)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from nas.config import ConfigError, resolve_runs
from nas.io import write_json, write_tsv, write_yaml
from nas.config import frozen
from nas.evaluators.table import table_task_id as table_task
from nas.meta.features import FEATURES, FEATURES_VERSION, computed, task_record
from nas.meta.knowledge import CLIP, Knowledge, finished_runs, from_runs, from_table, read_knowledge
from nas.meta.model import MetaModel, _Rows
from nas.predictors import RidgePredictor, spearman
from nas.meta.settings import meta_runs
from nas.runner import strategy_for
from nas.search import aggregate, columns, evaluated, propose
from nas.spaces import make_space
from tests.helpers import OPS3, nb201_arch, synthetic_score, table_run

SPACE = {"name": "nb201", "ops": OPS3}
ALL = [list(ops) for ops in itertools.product(OPS3, repeat=6)]


def three_column_table(path, noise=(0.5, 0.5, 0.5)):
    """Columns a, b, c: the synthetic landscape plus each its own fixed noise."""
    rng = np.random.default_rng(0)
    lines = ["arch,a,b,c"]
    for ops in ALL:
        base = synthetic_score(ops)
        values = [base + s * rng.standard_normal() for s in noise]
        lines.append(nb201_arch(ops) + "," + ",".join(f"{v:.3f}" for v in values))
    path.write_text("\n".join(lines) + "\n")
    return path


# -- features -----------------------------------------------------------------------------


def test_data_task_features_are_complete_and_deterministic():
    run = {"name": "r", "seed": 0, "task": {"name": "digits", "val_size": 300}, "evaluator": {"name": "train"}}
    first, second = computed(run), computed(run)
    assert list(first) == list(FEATURES) and first == second
    assert all(math.isfinite(v) for v in first.values())
    assert first["log_classes"] == pytest.approx(math.log(10)) and first["channels"] == 1.0
    smaller = computed({**run, "task": {"name": "digits", "val_size": 300, "train_size": 100}})
    assert smaller["log_train"] == pytest.approx(math.log(100)) and smaller["embed_0"] != first["embed_0"]


def test_pixel_statistics_ignore_normalisation_and_see_pixel_noise():
    import torch

    from nas.meta.features import pixel_statistics

    gray = torch.rand(20, 8, 8).cumsum(2)  # smooth along rows
    stats = pixel_statistics(gray)
    assert pixel_statistics(3 * gray - 7) == pytest.approx(stats, abs=1e-4)
    noisy = pixel_statistics(gray + torch.randn(20, 8, 8, generator=torch.Generator().manual_seed(0)))
    assert noisy["neighbour_corr"] < stats["neighbour_corr"] - 0.1
    run = {"name": "r", "seed": 0, "task": {"name": "digits", "val_size": 300}, "evaluator": {"name": "train"}}
    clean, digits_noisy = computed(run), computed({**run, "task": {**run["task"], "noise": 0.3}})
    assert digits_noisy["neighbour_corr"] < clean["neighbour_corr"] - 0.1


def test_task_ids_and_declared_features(nb201_table):
    run = table_run(nb201_table, task={"name": "digits", "features": {"log_classes": 2.0}})
    record = task_record(resolve_runs({"runs": {"t": run}})["t"])
    assert record == {"task": f"table:{nb201_table.name}:val", "features": {"log_classes": 2.0}, "source": "config",
                      "version": FEATURES_VERSION}


# -- knowledge base ---------------------------------------------------------------------------


def fake_run(results, name, task, features, values):
    rdir = results / name
    run = resolve_runs({"runs": {name: {"space": SPACE}}})[name]
    rows = [{"run": name, "generation": 0, "candidate": f"c{i:02d}", "arch": nb201_arch(ops),
             "status": "ok" if math.isfinite(v) else "diverged", "val_acc": v if math.isfinite(v) else None,
             "genome": [OPS3.index(o) for o in ops]} for i, (ops, v) in enumerate(values)]
    write_tsv(rdir / "history.tsv", columns(run), rows)
    write_json(rdir / "task.json", {"task": task, "features": features, "source": "config"})
    write_yaml(rdir / "run.yaml", frozen(run))
    return rdir


def test_knowledge_from_runs_and_a_table(tmp_path):
    results = tmp_path / "results"
    good, bad = ALL[-1], ALL[0]
    fake_run(results, "r1", "digits", {"log_classes": 2.3}, [(good, 90.0), (bad, 10.0), (ALL[5], 50.0)])
    fake_run(results, "r2", "digits", {"log_classes": 2.3}, [(good, 80.0), (ALL[7], math.nan)])
    (results / "unfinished").mkdir()
    runs = finished_runs(results)
    assert [r.name for r in runs] == ["r1", "r2"]
    knowledge = from_runs(runs)
    table = three_column_table(tmp_path / "t.csv")
    from_table(table, "arch", {"a": {"log_classes": 4.0}, "b": None}, knowledge)
    assert sorted(knowledge.tasks) == ["digits", table_task(table, "a"), table_task(table, "b")]
    scores = knowledge.scores()
    digits = scores["digits"]
    assert digits[nb201_arch(good)] > digits[nb201_arch(ALL[5])] > digits[nb201_arch(bad)]
    assert digits[nb201_arch(ALL[7])] == -CLIP  # failed
    assert knowledge.values["digits"][nb201_arch(good)] == [90.0, 80.0]  # pooled over runs
    a = np.array(list(scores[table_task(table, "a")].values()))
    assert len(a) == len(ALL) and abs(a.mean()) < 0.05 and abs(a.std() - 1) < 0.05
    knowledge.write(tmp_path / "meta")
    tasks, read_back = read_knowledge(tmp_path / "meta")
    assert tasks["digits"] == {"log_classes": 2.3}
    assert read_back["digits"] == pytest.approx(digits, abs=1e-6)


def test_a_task_json_of_older_features_is_moved_aside_to_be_made_again(tmp_path):
    from nas.io import CorruptArtefact
    from nas.meta.features import read_task
    from tests.helpers import nas_cli

    rdir = fake_run(tmp_path / "results", "r1", "digits", {}, [(ALL[-1], 90.0), (ALL[0], 10.0), (ALL[5], 50.0)])
    # Version 1: the features of the first MAX_IMAGES images, not of a random sample (no "version").
    old = {**{k: 0.5 for k in FEATURES}}
    write_json(rdir / "task.json", {"task": "digits", "features": old, "source": "data"})
    with pytest.raises(CorruptArtefact, match=r"task.json: its features are of version None, not 2"):
        read_task(rdir / "task.json")
    # The meta_model rule's command moves it aside; the next snakemake makes it again.
    out = nas_cli("meta", "build", "--out", "results/meta", cwd=tmp_path, check=False)
    assert out.returncode == 2 and "of version None" in out.stderr
    assert not (rdir / "task.json").exists() and (rdir / "task.json.corrupt").exists()
    declared = {"log_classes": 2.3}  # a table task's task.json has declared features only: not stale
    write_json(rdir / "task.json", {"task": "t", "features": declared, "source": "config"})
    assert read_task(rdir / "task.json")["features"] == declared


# -- meta-model -------------------------------------------------------------------------------


def planted_knowledge():
    """Two tasks that both rank a planted architecture first, and a third unrelated one."""
    rng = np.random.default_rng(1)
    planted = nb201_arch(["skip_connect"] * 6)
    knowledge = Knowledge()
    for task, features, best in (("near", {"f": 0.0}, planted), ("also", {"f": 0.5}, planted),
                                 ("far", {"f": 10.0}, nb201_arch(["none"] * 6))):
        knowledge.tasks[task] = features
        for ops in ALL:
            arch = nb201_arch(ops)
            knowledge.values.setdefault(task, {})[arch] = [100.0 if arch == best else float(rng.normal(50, 5))]
    return knowledge, planted


def test_meta_model_ranks_the_planted_architecture_first_and_weights_similar_tasks(tmp_path):
    knowledge, planted = planted_knowledge()
    model = MetaModel.build(knowledge, SPACE)
    scorer = model.scorer({"f": 0.1})
    assert scorer.top(1) == [planted]
    assert scorer.weights["near"] > scorer.weights["also"] > scorer.weights["far"]
    assert model.scorer({"f": 10.0}).top(1) == [nb201_arch(["none"] * 6)]
    knowledge.write(tmp_path)
    model.save(tmp_path)
    loaded = MetaModel.load(tmp_path)
    assert loaded.scorer({"f": 0.1}).top(5) == scorer.top(5)
    archs = [nb201_arch(ops) for ops in ALL[:50]]
    assert loaded.predict({"f": 0.1}, archs) == pytest.approx(model.predict({"f": 0.1}, archs), abs=1e-5)


def test_with_sparse_knowledge_the_similar_task_s_architectures_come_first():
    """Each architecture known from one task only (short runs): a similar task's
    good architectures outrank a dissimilar task's slightly better-scored ones."""
    knowledge = Knowledge()
    rng = np.random.default_rng(2)
    archs = [nb201_arch(ops) for ops in ALL[:60]]
    for task, features, mine, top in (("near", {"f": 0.0}, archs[:30], 1.5), ("far", {"f": 3.0}, archs[30:], 2.0)):
        knowledge.tasks[task] = features
        for i, arch in enumerate(mine):
            knowledge.values.setdefault(task, {})[arch] = [50.0 + (10 * top if i == 0 else float(rng.normal(0, 5)))]
    model = MetaModel.build(knowledge, SPACE)
    assert model.scorer({"f": 0.2}).top(1) == [archs[0]]
    assert model.scorer({"f": 2.8}).top(1) == [archs[30]]


def test_the_predictor_scores_architectures_no_task_evaluated():
    knowledge = Knowledge()
    rng = np.random.default_rng(0)
    held_out = ALL[::3]
    for task in ("a", "b"):
        knowledge.tasks[task] = {}
        for ops in ALL:
            if ops not in held_out:
                knowledge.values.setdefault(task, {})[nb201_arch(ops)] = [synthetic_score(ops) + rng.normal()]
    scorer = MetaModel.build(knowledge, SPACE).scorer({})
    archs = [nb201_arch(ops) for ops in held_out]
    assert not any(scorer.known(a) for a in archs)
    predicted = scorer.score(archs)
    truth = [synthetic_score(ops) for ops in held_out]
    assert np.corrcoef(predicted, truth)[0, 1] > 0.9


def _knowledge(tasks, value):
    """Knowledge of `tasks` ({task: architectures}) with value(task, ops, rng) each."""
    rng = np.random.default_rng(3)
    knowledge = Knowledge()
    for task, opss in tasks.items():
        knowledge.tasks[task] = {}
        for ops in opss:
            knowledge.values.setdefault(task, {})[nb201_arch(ops)] = [value(task, ops, rng)]
    return knowledge


def _truth_correlation(model, truth):
    return spearman(model.predict({}, [nb201_arch(ops) for ops in ALL]), np.array([truth(ops) for ops in ALL]))


def test_cross_validation_picks_a_rich_predictor_for_dense_clean_knowledge():
    def pairs(ops):  # gene effects plus an interaction of the first and last edge
        return synthetic_score(ops) + (8.0 if ops[0] == ops[5] else 0.0)

    model = MetaModel.build(_knowledge({t: ALL for t in "abc"}, lambda t, ops, rng: pairs(ops) + rng.normal()), SPACE)
    assert "pairs" in model.encoding and model.ridge <= 10
    assert len(model.selection) == 2 * 2 * 5  # weightings x encodings (no task features) x ridges
    assert _truth_correlation(model, pairs) > 0.95


def test_cross_validation_keeps_the_predictor_of_sparse_noisy_knowledge_plain():
    """A few noisy trainings per task: the chosen predictor (plain genes) ranks the space better
    than the richest encoding with a weak ridge fitted on the same rows."""
    rng = np.random.default_rng(4)
    tasks = {t: [ALL[i] for i in rng.choice(len(ALL), 25, replace=False)] for t in "abcd"}
    knowledge = _knowledge(tasks, lambda t, ops, rng: synthetic_score(ops) + rng.normal(0, 12))
    model = MetaModel.build(knowledge, SPACE)
    rich = MetaModel.build(knowledge, SPACE)
    rich.encoding, rich.weighting, rich.ridge = ("genes", "pairs"), "exp", 0.1
    rows = _Rows.join(rich._rows())
    rich.predictor = RidgePredictor(0.1).fit(rows.x[:, rich._mask(rich.encoding)], rows.y, np.exp(rows.y))
    chosen, weak = _truth_correlation(model, synthetic_score), _truth_correlation(rich, synthetic_score)
    assert model.encoding == ("genes",) and chosen > 0.6 and chosen > weak + 0.1


def test_an_architecture_no_task_evaluated_can_be_a_seed_and_known_scores_are_shrunk_to_the_prediction():
    best = ["nor_conv_3x3"] * 6  # the synthetic landscape's best, left out of the knowledge
    rest = [ops for ops in ALL[::7] if ops != best]  # a sample of the space: none of its best cells
    knowledge = _knowledge({"a": rest, "b": rest}, lambda t, ops, rng: synthetic_score(ops) + rng.normal(0, 0.5))
    scorer = MetaModel.build(knowledge, SPACE).scorer({})
    assert not scorer.known(nb201_arch(best)) and scorer.top(1) == [nb201_arch(best)]
    arch = nb201_arch(rest[100])
    observed = scorer.total[arch] / scorer.mass[arch]
    predicted = scorer.model.predict({}, [arch])[0]
    assert scorer.score([arch])[0] == pytest.approx((2 * observed + predicted) / 3)


# -- warm start ---------------------------------------------------------------------------------


@pytest.fixture
def model_dir(tmp_path):
    knowledge, _ = planted_knowledge()
    folder = tmp_path / "meta"
    knowledge.write(folder)
    MetaModel.build(knowledge, SPACE).save(folder)
    return folder


def warm_run(table, model_dir, strategy, screen=None, **warm):
    run = table_run(table, strategy=strategy, task={"name": "digits", "features": {"f": 0.0}},
                    warm_start={"model": str(model_dir), "top": 4, "pretrain_steps": 100, **warm},
                    **({"screen": screen} if screen else {}))
    return resolve_runs({"runs": {"w": run}})["w"]


@pytest.mark.parametrize("strategy", [{"name": "rea", "sample_size": 2}, {"name": "ga"}, {"name": "ls"},
                                      {"name": "random"}])
def test_first_generation_starts_from_the_seeds(nb201_table, model_dir, strategy):
    run = warm_run(nb201_table, model_dir, strategy)
    seeds = [make_space(SPACE).to_string(g) for g in strategy_for(run).warm.seeds]
    assert len(seeds) == 4 and seeds[0] == nb201_arch(["skip_connect"] * 6)
    specs = propose(run, 0, strategy_for(run).initial_state(), [], strategy_for(run))
    assert [s["arch"] for s in specs[:4]] == seeds and {s["origin"] for s in specs[:4]} == {"meta"}
    assert len(specs) == 6 and len({s["arch"] for s in specs}) == 6
    cold = {k: v for k, v in run.items() if k != "warm_start"}
    cold_strategy = strategy_for(cold)
    assert [s["arch"] for s in propose(cold, 0, cold_strategy.initial_state(), [], cold_strategy)][:4] != seeds


def test_pretrained_reinforce_puts_more_probability_on_the_seeds(nb201_table, model_dir):
    import torch

    run = warm_run(nb201_table, model_dir, {"name": "reinforce", "controller": "mlp"})
    warm = strategy_for(run)
    cold = strategy_for({k: v for k, v in run.items() if k != "warm_start"})
    seeds = torch.tensor([list(g) for g in warm.warm.seeds])
    probabilities = []
    for strategy in (cold, warm):
        net = strategy._load(strategy.initial_state())
        probabilities.append(net.log_prob(seeds)[0].exp().sum().item())
    # Independent decisions (mlp) can only match the seeds' per-edge frequencies.
    assert probabilities[1] > 3 * probabilities[0]


def test_the_meta_screen_keeps_the_best_scored_proposals(nb201_table, model_dir):
    from nas.evaluators.table import table_for

    run = warm_run(nb201_table, model_dir, {"name": "rea", "sample_size": 2}, screen={"by": "meta", "keep": 0.2})
    strategy = strategy_for(run)
    state = strategy.initial_state()
    specs = propose(run, 0, state, [], strategy)
    table = table_for(run["evaluator"])
    rows, state = aggregate(run, state, specs, [table.metrics(s["arch"]) for s in specs], strategy)
    history = [evaluated(r, run["objectives"]) for r in rows]
    rng = np.random.default_rng(0)
    many = strategy.propose(state, history, 4 * 5, np.random.default_rng(0))
    kept = strategy.proposals(state, history, 4, rng)
    scores = strategy.warm.score([p.genome for p in many])
    assert [p.arch for p in kept] == [many[i].arch for i in np.argsort(-scores, kind="stable")[:4]]


def test_config_refuses_bad_warm_start_keys():
    for bad, words in (({"model": "m", "seeds": 3}, "runs.r.warm_start.seeds: unknown key"),
                       ({"top": 3}, "'model' is a required property"),
                       ({"model": "m", "top": 0}, "runs.r.warm_start.top: must be >= 1"),
                       ({"model": "m", "pretrain_steps": "x"}, "runs.r.warm_start.pretrain_steps: expected integer")):
        with pytest.raises(ConfigError, match=words.replace("(", r"\(").replace(")", r"\)")):
            resolve_runs({"runs": {"r": {"warm_start": bad}}})
    with pytest.raises(ConfigError, match="meta.tables.0.columns.c.f: expected number"):
        resolve_runs({"runs": {"r": {}}, "meta": {"tables": [{"path": "t", "columns": {"c": {"f": "x"}}}]}})


def test_meta_runs_are_the_runs_without_a_warm_start_from_results_meta():
    runs = {"a": {}, "b": {"warm_start": {"model": "results/meta"}}, "c": {"warm_start": {"model": "other"}},
            "zc": {"evaluator": {"name": "proxy"}}}
    # A proxy's scores are not results of the task: not knowledge unless named.
    assert meta_runs({"tables": []}, runs) == ["a", "c"]
    assert meta_runs({}, runs) == []
    with pytest.raises(ConfigError, match="meta.runs: run 'b' is warm-started"):
        meta_runs({"runs": ["a", "b"]}, runs)
    with pytest.raises(ConfigError, match="meta.runs: no run 'x'"):
        meta_runs({"runs": ["x"]}, runs)


def test_warm_start_inputs_are_the_model_and_task_json_of_generation_zero():
    from nas.meta.settings import warm_start_inputs

    run = {"name": "w", "warm_start": {"model": "results/meta"}}
    assert warm_start_inputs(run, "000") == ["results/meta/model.json", "results/w/task.json"]
    assert warm_start_inputs(run, 1) == [] and warm_start_inputs({"name": "c"}, 0) == []


def test_features_see_a_random_sample_not_the_first_classes(tmp_path):
    """An image folder's split is ordered by class: its first 512 of 615 training
    images hold 7 of the 8 classes (label_entropy 0.93); a seeded sample holds them all."""
    from PIL import Image

    from nas.meta.features import MAX_IMAGES, sample

    rng = np.random.default_rng(0)
    for c in range(8):
        (tmp_path / "train" / f"c{c}").mkdir(parents=True)
        for i in range(120):
            Image.fromarray(rng.integers(0, 255, (4, 4, 3), dtype=np.uint8)).save(tmp_path / "train" / f"c{c}" / f"{i}.png")
    run = resolve_runs({"runs": {"r": {"task": {"name": "image_folder", "root": str(tmp_path), "image_size": 4}}}})["r"]
    features = computed(run)
    assert features["label_entropy"] > 0.99 and features["log_train"] == pytest.approx(math.log(615))
    assert sample(615) == sample(615) and len(sample(615)) == MAX_IMAGES and sample(300) == list(range(300))
