"""Multi-objective, constrained search through the real snakemake, on the table
evaluator (write_cost_table: accuracy against params and latency, no training).

What the files must say is recomputed here from history.tsv by brute force,
not with nas.objectives."""

from __future__ import annotations

import csv
import json
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import yaml

from nas import layout, steps
from nas.config import frozen, resolve_runs
from nas.io import tsv_text, write_yaml
from nas.objectives import constraints_of, pareto_rows
from nas.report import summarise
from nas.runner import run_in_process
from nas.search import columns
from tests.helpers import (
    cost_table_run, kill_when, look_up, nas_cli, snakemake, write_config, write_cost_table,
)

PARAMS_MAX, LATENCY_MAX = 28000.0, 4.0
CONSTRAINTS = {"params": {"max": PARAMS_MAX}, "latency_ms": {"max": LATENCY_MAX}}
GENERATIONS, SIZES = 3, [6, 4, 4]
EVALUATIONS = sum(SIZES)


def settings(table: Path) -> dict[str, dict[str, Any]]:
    """Two objectives (val_acc max, params min), a cheap bound (params) and a measured one (latency)."""
    return {
        "mo-nsga2": cost_table_run(table, strategy={"name": "nsga2"}, constraints=CONSTRAINTS,
                                   generations=GENERATIONS),
        "mo-rea": cost_table_run(table, strategy={"name": "rea", "sample_size": 2}, constraints=CONSTRAINTS,
                                 generations=GENERATIONS),
    }


def read_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f, delimiter="\t"))


def signed(row: dict[str, str]) -> tuple[float, float]:
    return float(row["val_acc"]), -float(row["params"])


def meets(row: dict[str, str]) -> bool:
    return float(row["params"]) <= PARAMS_MAX and float(row["latency_ms"]) <= LATENCY_MAX


def brute_front(rows: list[dict[str, str]]) -> list[dict[str, str]]:
    """Feasible ok rows no other such row dominates; of equal ones the first. In history order."""
    good = [r for r in rows if r["status"] == "ok" and meets(r)]
    front = []
    for i, r in enumerate(good):
        a = signed(r)
        beaten = any(all(x >= y for x, y in zip(signed(q), a)) and signed(q) != a for q in good)
        repeated = any(signed(q) == a for q in good[:i])
        if not beaten and not repeated:
            front.append(r)
    return front


def area(points: list[tuple[float, float]], ideal, nadir) -> float:
    """2-D hypervolume of signed points scaled to [0, 1] by (ideal, nadir), reference the nadir."""
    tallest: dict[float, float] = {}
    for pt in points:
        x, y = ((p - n) / (i - n) if i != n else 0.0 for p, i, n in zip(pt, ideal, nadir))
        if x > 0 and y > 0:
            tallest[x] = max(tallest.get(x, 0.0), y)
    xs = sorted(tallest, reverse=True)
    total, height = 0.0, 0.0
    for k, x in enumerate(xs):  # strips from the largest x down: each as tall as the best point to its right
        height = max(height, tallest[x])
        total += (x - (xs[k + 1] if k + 1 < len(xs) else 0.0)) * height
    return total


def bounds(points: list[tuple[float, float]]) -> tuple[tuple[float, ...], tuple[float, ...]]:
    return tuple(map(max, zip(*points))), tuple(map(min, zip(*points)))


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """Both runs, finished by one snakemake."""
    work = tmp_path_factory.mktemp("mo")
    table = write_cost_table(work / "cost.csv")
    runs = settings(table)
    config = write_config(work / "config.yaml", runs)
    snakemake(work, "--configfile", str(config))
    resolved = resolve_runs(yaml.safe_load(config.read_text()))
    return work, table, resolved


def test_pareto_tsv_is_the_feasible_front_of_history(finished):
    work, _, runs = finished
    for name in runs:
        rdir = work / layout.run_dir(name)
        history = read_rows(rdir / "history.tsv")
        assert len(history) == EVALUATIONS
        pareto = read_rows(work / layout.pareto_table(layout.run_dir(name)))
        assert (rdir / "pareto.tsv").read_text().splitlines()[0] == (rdir / "history.tsv").read_text().splitlines()[0]
        front = brute_front(history)
        assert len(front) >= 2, f"{name}: a trade-off front, not one point"
        assert pareto == front, name
        assert (rdir / "pareto.png").read_bytes()[:4] == b"\x89PNG"


def test_no_candidate_breaks_the_cheap_constraint(finished):
    """params is known from the table without a query: nothing above the bound is proposed.
    The same runs without constraints do go above it, so the bound is what kept them out."""
    work, _, runs = finished
    for name, run in runs.items():
        history = read_rows(work / layout.history(layout.run_dir(name)))
        assert all(float(r["params"]) <= PARAMS_MAX for r in history), name
        specs = sorted((work / layout.run_dir(name)).glob("gen_*/candidates/c*.yaml"))
        assert len(specs) == EVALUATIONS and {yaml.safe_load(s.read_text())["arch"] for s in specs} == {
            r["arch"] for r in history}
        free = {k: v for k, v in run.items() if k != "constraints"}
        assert any(float(r["params"]) > PARAMS_MAX for r in run_in_process(free, look_up)), name


def test_a_measured_constraint_marks_its_breakers_infeasible(finished):
    work, _, runs = finished
    for name in runs:
        rdir = work / layout.run_dir(name)
        history = read_rows(rdir / "history.tsv")
        broken = [r for r in history if float(r["latency_ms"]) > LATENCY_MAX]
        assert broken, f"{name}: the latency bound was never broken, so this test tests nothing"
        assert all(r["status"] == "infeasible" for r in broken)
        assert all(r["status"] == "ok" for r in history if float(r["latency_ms"]) <= LATENCY_MAX)
        assert all(r["val_acc"] != "" for r in broken)  # looked up all the same: measured, then judged
        front = {(r["generation"], r["candidate"]) for r in read_rows(rdir / "pareto.tsv")}
        assert not front & {(r["generation"], r["candidate"]) for r in broken}
        summary = json.loads((rdir / "summary.json").read_text())
        assert summary["status"] == {"infeasible": len(broken), "ok": EVALUATIONS - len(broken)}
        feasible = [r for r in history if r["status"] == "ok"]
        assert summary["best"]["val_acc"] == max(float(r["val_acc"]) for r in feasible)
        assert summary["best"]["latency_ms"] <= LATENCY_MAX


def test_summary_has_the_front_and_its_hypervolume_per_generation(finished):
    work, _, runs = finished
    for name in runs:
        rdir = work / layout.run_dir(name)
        history = read_rows(rdir / "history.tsv")
        pareto = json.loads((rdir / "summary.json").read_text())["pareto"]
        front = brute_front(history)
        ideal, nadir = bounds([signed(r) for r in front])
        assert pareto["size"] == len(front)
        assert [(m["generation"], m["candidate"], m["arch"]) for m in pareto["front"]] == [
            (int(r["generation"]), r["candidate"], r["arch"]) for r in front]
        assert pareto["ideal"] == {"val_acc": ideal[0], "params": -ideal[1]}
        assert pareto["nadir"] == {"val_acc": nadir[0], "params": -nadir[1]}
        assert pareto["hypervolume"] == pytest.approx(area([signed(r) for r in front], ideal, nadir), abs=1e-6)
        assert 0 < pareto["hypervolume"] < 1
        by_generation = pareto["by_generation"]
        assert len(by_generation) == GENERATIONS
        for g, entry in enumerate(by_generation):
            upto = brute_front([r for r in history if int(r["generation"]) <= g])
            assert entry["size"] == len(upto), (name, g)
            assert entry["hypervolume"] == pytest.approx(area([signed(r) for r in upto], ideal, nadir), abs=1e-6)
        hv = [e["hypervolume"] for e in by_generation]
        assert hv == sorted(hv) and hv[-1] == pytest.approx(pareto["hypervolume"])


def _cells(text: str, header: str) -> dict[str, str]:
    """Run name -> the cell under `header` of a text table (columns split by 2+ spaces)."""
    lines = text.splitlines()
    names = re.split(r"\s{2,}", lines[0].strip())
    assert header in names, lines[0]
    out = {}
    for line in lines[1:]:
        cells = re.split(r"\s{2,}", line.strip())
        if len(cells) == len(names):
            out[cells[0]] = cells[names.index(header)]
    return out


def test_status_and_compare_show_front_size_and_hypervolume(finished):
    work, _, runs = finished
    fronts = {name: brute_front(read_rows(work / layout.history(layout.run_dir(name)))) for name in runs}
    # Runs with the same objectives share one normalisation (their fronts together), so they compare.
    ideal, nadir = bounds([signed(r) for f in fronts.values() for r in f])
    expected = {n: f"{len(f)} / {area([signed(r) for r in f], ideal, nadir):.3f}" for n, f in fronts.items()}
    dirs = [layout.run_dir(n) for n in runs]
    status = nas_cli("status", *dirs, cwd=work).stdout
    assert _cells(status, "front / hypervolume") == expected
    compare = nas_cli("compare", *dirs, "--out", str(work / "compare.png"), cwd=work).stdout
    assert _cells(compare, "front / hypervolume") == expected
    # One run alone: its own normalisation, the summary's hypervolume.
    name = next(iter(runs))
    alone = _cells(nas_cli("status", layout.run_dir(name), cwd=work).stdout, "front / hypervolume")
    summary = json.loads((work / layout.summary(layout.run_dir(name))).read_text())["pareto"]
    assert alone == {name: f"{summary['size']} / {summary['hypervolume']:.3f}"}


def test_best_picks_from_the_front(finished):
    work, _, runs = finished
    for name in runs:
        rdir = layout.run_dir(name)
        history = read_rows(work / layout.history(rdir))
        front = brute_front(history)
        ideal, nadir = bounds([signed(r) for r in front])
        scaled = [[(p - n) / (i - n) for p, i, n in zip(signed(r), ideal, nadir)] for r in front]
        knee = front[min(range(len(front)), key=lambda k: (sum((1 - x) ** 2 for x in scaled[k]), k))]
        best_acc = max(front, key=lambda r: float(r["val_acc"]))
        smallest = min(front, key=lambda r: float(r["params"]))
        rules = (("knee", knee), ("max:val_acc", best_acc), ("min:params", smallest)) if name == "mo-nsga2" \
            else (("knee", knee),)
        for rule, want in rules:
            out = nas_cli("best", rdir, "--pick", rule, cwd=work).stdout
            assert out.startswith(f"# picked by {rule} from the feasible front of {len(front)} of {EVALUATIONS}")
            picked = yaml.safe_load(out)
            assert (picked["generation"], picked["candidate"], picked["arch"]) == (
                int(want["generation"]), want["candidate"], want["arch"]), (name, rule)
            assert picked["metrics"]["params"] <= PARAMS_MAX and picked["metrics"]["status"] == "ok"
        assert len({id(knee), id(best_acc), id(smallest)}) >= 2, "the rules are not told apart on this front"
    bad = nas_cli("best", layout.run_dir("mo-nsga2"), "--pick", "most", cwd=work, check=False)
    assert bad.returncode != 0 and "knee" in bad.stderr


def test_workflow_equals_the_in_process_search(finished):
    """Two objectives and both kinds of constraint: the files equal what the same code
    computes in memory, history, front and summary alike."""
    work, _, runs = finished
    for name, run in runs.items():
        rdir = work / layout.run_dir(name)
        rows = run_in_process(run, look_up)
        assert (rdir / "history.tsv").read_text() == tsv_text(columns(run), rows)
        front = pareto_rows(rows, run["objectives"], constraints_of(run))
        assert (rdir / "pareto.tsv").read_text() == tsv_text(columns(run), front)
        summary = json.loads((rdir / "summary.json").read_text())
        assert summary["pareto"] == json.loads(json.dumps(summarise(run, rows, GENERATIONS)["pareto"]))


def _deterministic_files(rdir: Path) -> dict[str, bytes]:
    keep = ("history.tsv", "pareto.tsv", "summary.json", "run.yaml")
    files = {p.relative_to(rdir).as_posix(): p.read_bytes() for p in sorted(rdir.rglob("*"))
             if p.is_file() and (p.name in keep or p.name in ("state.json", "table.tsv")
                                 or (p.parent.name == "candidates" and p.suffix == ".yaml"))}
    return files


def test_kill_and_resume_gives_the_uninterrupted_run(finished, tmp_path):
    """SIGKILL snakemake and its jobs while nsga2 proposes its last generation, --unlock,
    run again: every file that defines the result is byte for byte the uninterrupted one's."""
    work, table, runs = finished
    name = "mo-nsga2"
    write_config(tmp_path / "config.yaml", {name: settings(table)[name]})
    rdir = layout.run_dir(name)
    log = tmp_path / layout.log(rdir, "propose", GENERATIONS - 1)
    kill_when(tmp_path, log, "--configfile", "config.yaml", timeout=120)
    killed = tmp_path / rdir
    assert log.exists() and not (tmp_path / layout.candidates_dir(rdir, GENERATIONS - 1)).exists(), \
        "propose was not caught running"
    assert (killed / "gen_001" / "state" / "state.json").is_file() and not (killed / "history.tsv").exists()

    snakemake(tmp_path, "--configfile", "config.yaml", "--unlock")
    snakemake(tmp_path, "--configfile", "config.yaml")
    straight = _deterministic_files(work / rdir)
    resumed = _deterministic_files(killed)
    assert len(straight) == 4 + GENERATIONS * 2 + EVALUATIONS
    assert list(resumed) == list(straight)
    for path in straight:
        assert resumed[path] == straight[path], path
    summary = json.loads(straight["summary.json"])
    assert summary["pareto"]["by_generation"] == json.loads(resumed["summary.json"])["pareto"]["by_generation"]


def test_file_steps_equal_the_in_process_search_when_a_constrained_metric_is_missing(tmp_path):
    """The workflow's own steps (propose, evaluate, aggregate: state and tables through
    files), run here without snakemake, on a table whose latency is missing for every
    architecture with 3 or more convolutions. Those are infeasible (a missing constrained
    value is infinitely far from the bound) in memory; read back from state.json they
    must still be, or the workflow searches differently from the in-process loop."""
    table = write_cost_table(tmp_path / "cost.csv")
    lines = table.read_text().splitlines()
    blanked = [lines[0]] + [",".join([*line.split(",")[:4], ""]) if line.count("nor_conv_3x3") >= 3 else line
                            for line in lines[1:]]
    table.write_text("\n".join(blanked) + "\n")
    for strategy in ({"name": "nsga2"}, {"name": "rea", "sample_size": 2}):
        run = resolve_runs({"runs": {"m": cost_table_run(table, strategy=strategy, generations=4,
                                                          constraints={"latency_ms": {"max": 6.0}})}})["m"]
        rdir = tmp_path / strategy["name"]
        rdir.mkdir()
        write_yaml(layout.run_config(rdir), frozen(run))
        rows = []
        for g in range(run["generations"]):
            steps.propose(rdir, g)
            steps.evaluate_generation(rdir, g)
            rows += steps.aggregate(rdir, g)
        in_memory = run_in_process(run, look_up)
        assert any(r["status"] == "infeasible" and r["latency_ms"] is None for r in in_memory)
        assert tsv_text(columns(run), rows) == tsv_text(columns(run), in_memory), strategy["name"]


def test_snakemake_refuses_multi_objective_configs_before_any_job(tmp_path):
    table = write_cost_table(tmp_path / "cost.csv")
    plain_eval = {"name": "table", "tables": [{"path": str(table), "arch_column": "arch"}],
                  "columns": {"val_acc": "val", "test_acc": "test"}}
    cases = {
        "not-produced": (cost_table_run(table, evaluator=plain_eval),
                         ["config key runs.bad.objectives.1.metric:", "does not produce 'params'"]),
        "nothing-meets": (cost_table_run(table, constraints={"params": {"max": 10}}),
                          ["config key runs.bad.constraints:", "no architecture of space 'nb201' meets params max 10"]),
        # Several objectives that a strategy cannot serve: MnasNet's reward needs a target. Checked
        # with `snakenas check` (the same resolve_runs), which spares a second torch import.
        "mnas-without-target": (cost_table_run(table, strategy={"name": "reinforce", "reward": "mnas"}),
                                ["config key runs.bad.objectives:", "reward='mnas'", "reward_target"]),
    }

    def dry_run(case: str):
        work = tmp_path / case
        work.mkdir()
        config = write_config(work / "config.yaml", {"bad": cases[case][0]})
        if case.startswith("mnas"):
            return nas_cli("check", str(config), cwd=work, check=False)
        return snakemake(work, "-n", "--configfile", str(config), check=False, timeout=180)

    with ThreadPoolExecutor(len(cases)) as pool:
        results = dict(zip(cases, pool.map(dry_run, cases)))
    for case, proc in results.items():
        assert proc.returncode != 0, case
        for word in cases[case][1]:
            assert word in proc.stderr, f"{case}: {word!r} not in stderr:\n{proc.stderr[-3000:]}"
        assert not (tmp_path / case / "results").exists(), case
