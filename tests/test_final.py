"""Repeated trainings (training.repeats) and the final model (final:, rules/final.smk)."""

from __future__ import annotations

import math
import shutil
import statistics
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from nas import final, layout
from nas.config import ConfigError, resolve_runs
from nas.evaluators import Evaluation, evaluator_for
from nas.evaluators.base import Evaluator
from nas.evaluators.repeats import combine, evaluate_repeated, repeat_seed
from nas.io import read_json, read_tsv, write_tsv
from nas.objectives import resolve, top_rows
from tests.helpers import nas_cli, snakemake, table_run, write_config


class Stub(Evaluator):
    """Metrics that are a known function of the seed; counts its trainings."""

    name = "stub"
    metrics = ()
    epoch_columns = ("epoch", "train_loss", "seconds")
    primary = "val_acc"

    def __init__(self, fail_seeds: tuple[int, ...] = ()) -> None:
        super().__init__({}, {})
        self.calls: list[int] = []
        self.fail_seeds = fail_seeds

    @property
    def varying_metrics(self) -> tuple[str, ...]:
        return ("val_acc", "test_acc")

    def task_id(self) -> str:
        return "stub"

    def evaluate(self, spec, out_dir=None, checkpoint=False) -> Evaluation:
        seed = spec["seed"]
        self.calls.append(seed)
        status = "diverged" if seed in self.fail_seeds else "ok"
        value = float(seed % 97)
        return Evaluation({"status": status, "val_acc": value, "test_acc": value / 2, "params": 7,
                           "train_seconds": 1.5},
                          [{"epoch": 1, "train_loss": value, "seconds": 0.5}])


def spec(repeats: int, seed: int = 11) -> dict[str, Any]:
    return {"arch": "a", "space": {"name": "nb201"}, "task": {}, "seed": seed, "run_seed": 0,
            "training": {"repeats": repeats}, "evaluator": {"name": "stub"}}


def expected(seeds: list[int]) -> tuple[float, float]:
    values = [float(s % 97) for s in seeds]
    return statistics.fmean(values), statistics.stdev(values)


def test_one_repeat_is_the_single_training_of_before():
    stub = Stub()
    result = evaluate_repeated(stub, spec(1))
    assert stub.calls == [11] and "repeats" not in result.metrics and "val_acc_std" not in result.metrics


def test_repeats_are_the_mean_and_std_of_trainings_with_their_own_seeds():
    stub = Stub()
    result = evaluate_repeated(stub, spec(3))
    seeds = [repeat_seed(11, i) for i in range(3)]
    assert stub.calls == seeds and seeds[0] == 11 and len(set(seeds)) == 3
    mean, std = expected(seeds)
    m = result.metrics
    assert m["val_acc"] == pytest.approx(mean) and m["val_acc_std"] == pytest.approx(std)
    assert m["test_acc"] == pytest.approx(mean / 2) and m["repeats"] == 3
    assert m["params"] == 7 and m["train_seconds"] == 4.5  # constant kept, clock summed
    assert result.epochs[0]["train_loss"] == pytest.approx(mean)


def test_a_failed_repeat_is_left_out_of_the_mean():
    seeds = [repeat_seed(11, i) for i in range(3)]
    result = evaluate_repeated(Stub(fail_seeds=(seeds[1],)), spec(3))
    assert result.metrics["status"] == "ok" and result.metrics["repeats"] == 2
    assert result.metrics["val_acc"] == pytest.approx(expected([seeds[0], seeds[2]])[0])
    none_ok = combine([Evaluation({"status": "diverged"}), Evaluation({"status": "oom"})], ("val_acc",), ())
    assert none_ok.metrics["status"] == "diverged" and none_ok.metrics["repeats"] == 0
    assert math.isnan(none_ok.metrics["val_acc"])


def test_a_resumed_job_trains_only_the_missing_repeats(tmp_path):
    whole = evaluate_repeated(Stub(), spec(3), tmp_path / "a")
    # A job killed after two of three repeats: the third folder is gone.
    out = tmp_path / "b"
    evaluate_repeated(Stub(), spec(3), out)
    shutil.rmtree(layout.repeat_dir(out, 2))
    stub, lines = Stub(), []
    resumed = evaluate_repeated(stub, spec(3), out, log=lines.append)
    assert stub.calls == [repeat_seed(11, 2)]
    assert sum("kept from an earlier job" in line for line in lines) == 2
    assert resumed.metrics == whole.metrics
    # A kept repeat of another spec (another seed) is trained again.
    other = evaluate_repeated(stub := Stub(), spec(3, seed=12), out, log=lines.append)
    assert len(stub.calls) == 3 and other.metrics["val_acc"] != whole.metrics["val_acc"]


def test_the_table_has_std_and_count_columns_only_with_repeats():
    run = {"evaluator": {"name": "train"}, "task": {"name": "digits"}}
    one, two = evaluator_for({**run, "training": {"repeats": 1}}), evaluator_for({**run, "training": {"repeats": 2}})
    assert one.table_columns == one.columns
    assert two.table_columns == (*one.columns, "val_acc_std", "test_acc_std", "val_loss_std", "train_loss_std",
                                 "repeats")


def _runs(tmp_path: Path, nb201_table: Path, **run: Any) -> dict[str, Any]:
    return resolve_runs({"runs": {"r": {**table_run(nb201_table), **run}}})


def test_repeats_and_final_on_a_table_are_refused(tmp_path, nb201_table):
    with pytest.raises(ConfigError, match=r"training.repeats: 2 trainings.*deterministic"):
        _runs(tmp_path, nb201_table, training={"repeats": 2})
    with pytest.raises(ConfigError, match=r"final: evaluator 'table' looks architectures up"):
        _runs(tmp_path, nb201_table, final={"top": 2})


def digits_run(**over: Any) -> dict[str, Any]:
    return {"generations": 1, "population": 2, "candidates": 2, "space": {"name": "nb201", "channels": 4,
            "cells_per_stage": 1}, "strategy": {"name": "random"},
            "task": {"name": "digits", "train_size": 60, "val_size": 60},
            "training": {"epochs": 1, "batch_size": 32}, **over}


@pytest.mark.parametrize("section, words", [
    ({"pick": "knee"}, "final.pick: 'knee' chooses among several objectives"),
    ({"train_on": "val"}, "final.train_on"),
    ({"top": 0}, "final.top: must be >= 1"),
])
def test_bad_final_sections_are_refused(section, words):
    with pytest.raises(ConfigError, match=words.replace(".", r"\.").replace("(", r"\(")):
        resolve_runs({"runs": {"r": digits_run(final=section)}})


def test_the_final_section_is_filled_and_not_part_of_run_yaml():
    run = resolve_runs({"runs": {"r": digits_run(final={})}})["r"]
    assert run["final"] == {"top": 3, "epochs": 1, "repeats": 3, "train_on": "train", "pick": None, "onnx": True}
    from nas.config import frozen

    assert "final" not in frozen(run)
    several = resolve_runs({"runs": {"r": digits_run(final={"pick": "min:params"}, objectives=[
        {"metric": "val_acc"}, {"metric": "params"}])}})["r"]
    assert several["final"]["pick"] == "min:params"
    with pytest.raises(ConfigError, match="final.pick: 'bogus' is not a metric"):
        resolve_runs({"runs": {"r": digits_run(final={"pick": "max:bogus"}, objectives=[
            {"metric": "val_acc"}, {"metric": "params"}])}})


def test_top_rows_by_the_objective_or_the_pick_rule():
    rows = [{"status": "ok", "val_acc": v, "params": p} for v, p in ((90, 5), (95, 9), (80, 1), (95, 3))]
    rows.append({"status": "diverged", "val_acc": None, "params": 1})
    one = resolve([{"metric": "val_acc"}])
    assert [r["params"] for r in top_rows(rows, one, [], 3)] == [9, 3, 5]  # ties: the earlier first
    two = resolve([{"metric": "val_acc"}, {"metric": "params"}])
    assert [r["params"] for r in top_rows(rows, two, [], 3, "min:params")] == [1, 3, 5]
    assert [r["params"] for r in top_rows(rows, two, [], 9, "max:val_acc")] == [3, 9, 5, 1]


# -- the real snakemake: a tiny search, then its final model -------------------------------


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    work = tmp_path_factory.mktemp("final")
    run = digits_run(final={"top": 2, "repeats": 2, "epochs": 2, "train_on": "train+val"})
    config = write_config(work / "config.yaml", {"fin": run})
    snakemake(work, "--configfile", str(config))
    return work, config


def test_the_final_rule_writes_the_table_and_the_exported_model(finished):
    work, _ = finished
    rdir = work / layout.run_dir("fin")
    folder = Path(layout.final_dir(rdir))
    rows = read_tsv(layout.final_table(rdir))
    assert [r["candidate"] for r in rows] == ["k00", "k01"]
    assert sum(r["winner"] == "yes" for r in rows) == 1
    assert {"search_val_acc", "val_acc", "val_acc_std", "repeats"} <= set(rows[0]) and rows[0]["repeats"] == "2"
    history = read_tsv(layout.history(rdir))
    best = max(history, key=lambda r: float(r["val_acc"]))
    assert rows[0]["arch"] == best["arch"] and float(rows[0]["search_val_acc"]) == float(best["val_acc"])
    card = yaml.safe_load(Path(layout.model_card(folder)).read_text())
    winner = next(r for r in rows if r["winner"] == "yes")
    assert card["arch"] == winner["arch"] and card["trained_on"] == "train+val"
    assert set(card["metrics"]["exported"]) == {"test_acc"}  # trained on val too: no val metrics
    assert card["exports"]["onnx"]["max_abs_diff"] <= 1e-4
    for path in (layout.model_state(folder), layout.model_program(folder), layout.model_onnx(folder),
                 layout.architecture_plot(folder), layout.card_html(folder)):
        assert Path(path).stat().st_size > 0, path
    page = Path(layout.card_html(folder)).read_text()
    assert winner["arch"] in page and "data:image/png;base64" in page and "load_model" in page


def test_the_exported_model_loads_and_predicts_a_png(finished):
    import torch
    from PIL import Image

    from nas.export import load_model

    work, _ = finished
    folder = work / layout.final_dir(layout.run_dir("fin"))
    card = yaml.safe_load((folder / "model.yaml").read_text())
    pixels = (np.arange(64).reshape(8, 8) * 4).astype(np.uint8)
    Image.fromarray(pixels, mode="L").save(work / "digit.png")
    x = (pixels / 255.0 - card["preprocess"]["mean"][0]) / card["preprocess"]["std"][0]
    logits = load_model(folder)(torch.tensor(x, dtype=torch.float32)[None, None])
    expected_class = card["classes"][int(logits.argmax())]
    for extra in ((), ("--torch",)):
        out = nas_cli("predict", str(folder), str(work / "digit.png"), *extra, cwd=work).stdout
        assert out.split("\t")[1] == expected_class


def test_best_names_the_final_model(finished):
    work, _ = finished
    out = nas_cli("best", "fin", cwd=work).stdout
    winner = next(r for r in read_tsv(layout.final_table(work / layout.run_dir("fin"))) if r["winner"] == "yes")
    assert f"# final model: {winner['candidate']} ({winner['source']}) {winner['arch']}: re-trained val_acc" in out


def test_a_changed_final_section_reruns_only_the_final_rules(finished):
    work, config = finished
    changed = yaml.safe_load(config.read_text())
    changed["runs"]["fin"]["final"]["epochs"] = 3
    other = write_config(work / "changed.yaml", changed["runs"])

    def jobs() -> set[str]:
        plan = snakemake(work, "--configfile", str(other), "-n").stdout
        stats = plan.split("Job stats:")[1].split("\n\n")[0].splitlines()
        return {line.split()[0] for line in stats[3:] if line.split() and line.split()[0] != "total"}

    assert jobs() == {"all", "final_settings", "final_propose", "final_train", "final_table", "final_model"}
    # Without ONNX, the other model rule (its outputs lack model.onnx).
    changed["runs"]["fin"]["final"]["onnx"] = False
    other = write_config(work / "changed.yaml", changed["runs"])
    planned = jobs()
    assert "final_model_without_onnx" in planned and "final_model" not in planned


def test_a_run_without_an_ok_candidate_has_no_final_model_and_keeps_its_results(finished, tmp_path):
    work, _ = finished
    rdir = tmp_path / "fin"
    shutil.copytree(work / layout.run_dir("fin"), rdir)
    rows = read_tsv(layout.history(rdir))
    for r in rows:
        r["status"], r["val_acc"] = "diverged", ""
    write_tsv(layout.history(rdir), list(rows[0]), rows)
    before = sorted(p.relative_to(rdir) for p in rdir.rglob("*"))
    proc = nas_cli("final", "propose", str(rdir), cwd=tmp_path, check=False)
    assert proc.returncode == 2 and "no candidate finished with status ok" in proc.stderr
    assert sorted(p.relative_to(rdir) for p in rdir.rglob("*")) == before
    with pytest.raises(final.FinalError, match="no re-trained candidate finished with status ok"):
        table = read_tsv(layout.final_table(rdir))
        for r in table:
            r["winner"], r["status"] = "", "diverged"
        write_tsv(layout.final_table(rdir), list(table[0]), table)
        final.winner_of(rdir)


def test_the_final_trainings_keep_their_repeats(finished):
    """A final re-training job run again (its metrics lost) trains nothing: both repeats are kept."""
    work, _ = finished
    rdir = work / layout.run_dir("fin")
    out = Path(layout.final_eval_dir(rdir, 0))
    before = read_json(layout.metrics_in(out))
    Path(layout.metrics_in(out)).unlink()
    proc = nas_cli("train", layout.final_spec(rdir, 0), "--out", str(out), cwd=work)
    assert proc.stderr.count("kept from an earlier job") == 2
    after = read_json(layout.metrics_in(out))
    assert {k: v for k, v in after.items() if k != "job"} == {k: v for k, v in before.items() if k != "job"}
