"""`python -m nas status | best | compare` and the Snakemake HTML report, on tiny table-evaluator runs."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest
import yaml

from nas import layout
from nas.inspect import interpretability_html, load_importance, scan_run
from nas.io import read_tsv
from nas.report import report
from tests.helpers import nas_cli, snakemake, table_run, write_config, write_nb201_table


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """Two finished runs (rea: 3 generations, random: 2), made once by the real snakemake."""
    work = tmp_path_factory.mktemp("inspect")
    table = write_nb201_table(work / "table.csv")
    runs = {"rea": table_run(table), "random": table_run(table, generations=2, strategy={"name": "random"})}
    config = write_config(work / "config.yaml", runs)
    snakemake(work, "--configfile", str(config))
    return work, config


@pytest.fixture
def copy(finished, tmp_path):
    """A writable copy of the finished runs, to break."""
    work, config = finished
    shutil.copytree(work / "results", tmp_path / "results")
    shutil.copy(config, tmp_path / "config.yaml")
    return tmp_path


def summary(work: Path, run: str) -> dict:
    return json.loads((work / "results" / run / "summary.json").read_text())


def set_status(path: Path, status: str) -> None:
    metrics = json.loads(path.read_text())
    path.write_text(json.dumps({**metrics, "status": status, "val_acc": None}))


def make_partial(work: Path) -> Path:
    """rea as if killed during generation 2: two candidates trained, two not, no table, no report."""
    rdir = work / "results" / "rea"
    for name in ("table.tsv", "state"):
        path = rdir / "gen_002" / name
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    for name in ("history.tsv", "summary.json", "best.yaml", "progress.png", "overview.html"):
        (rdir / name).unlink()
    for c in ("c02", "c03"):
        shutil.rmtree(rdir / "gen_002" / "evals" / c)
    return rdir


def test_status_of_finished_runs(finished):
    work, _ = finished
    out = nas_cli("status", cwd=work).stdout
    lines = out.splitlines()
    assert lines[0].split()[:4] == ["run", "strategy", "space", "generations"]
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    assert set(rows) == {"rea", "random"}
    assert rows["rea"][1:7] == ["rea", "nb201", "3/3", "14", "0", "0"]
    assert rows["random"][3:5] == ["2/2", "10"]
    for run in ("rea", "random"):
        best = summary(work, run)["best"]
        assert rows[run][-1] == best["arch"] and float(rows[run][-3]) == best["val_acc"]
    # every column starts at the same offset on every line
    start = lines[0].index("best arch")
    assert all(line[start - 2:start] == "  " and line[start] == "|" for line in lines[1:])


def test_status_of_a_killed_run(copy):
    rdir = make_partial(copy)
    scan = scan_run(rdir)
    assert scan.done == [0, 1] and scan.generations == [0, 1, 2]
    assert scan.ok == 6 + 4 + 2 and scan.pending == 2 and not scan.problems
    assert (scan.planned, scan.planned_known) == (3, False)  # no report, no config: at least the folders present
    out = nas_cli("status", "results/rea", cwd=copy).stdout
    assert out.splitlines()[1].split()[1:7] == ["rea", "nb201", "2/>=3", "12", "0", "2"]
    # the config the run came from knows the plan
    assert nas_cli("status", "rea", "--config", "config.yaml", cwd=copy).stdout.splitlines()[1].split()[3] == "2/3"


def test_failed_candidates_are_counted_by_status(copy):
    rdir = make_partial(copy)
    set_status(rdir / "gen_002" / "evals" / "c00" / "metrics.json", "oom")
    table = rdir / "gen_001" / "table.tsv"
    rows = list(csv.DictReader(table.open(), delimiter="\t"))
    rows[0].update(status="diverged", val_acc="", test_acc="")
    with table.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]), delimiter="\t", lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    scan = scan_run(rdir)
    assert scan.failed == {"diverged": 1, "oom": 1} and scan.ok == 10
    assert "2 (diverged 1, oom 1)" in nas_cli("status", "rea", cwd=copy).stdout


def test_corrupt_files_are_named_not_fatal(copy):
    rdir = make_partial(copy)
    (rdir / "gen_001" / "table.tsv").write_text("run\tgeneration\tcand")  # cut mid-write
    (rdir / "gen_002" / "evals" / "c00" / "metrics.json").write_text('{"status": "o')
    proc = nas_cli("status", cwd=copy, check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    out = proc.stdout
    assert "results/rea/gen_001/table.tsv: truncated" in out
    assert "results/rea/gen_002/evals/c00/metrics.json: truncated or not valid JSON" in out
    rows = {line.split()[0]: line.split() for line in out.splitlines()[1:3]}
    # gen_001 falls back to its candidates' own files; the broken metrics.json is left out
    assert rows["rea"][3:7] == ["1/>=3", "11", "0", "2"] and rows["random"][3] == "2/2"
    (rdir / "run.yaml").write_text("name: [unclosed")
    out = nas_cli("status", "rea", cwd=copy, check=False).stdout
    assert "results/rea/run.yaml: not valid YAML" in out and out.splitlines()[1].split()[:3] == ["rea", "?", "?"]


def test_missing_run_is_an_error(copy):
    proc = nas_cli("status", "nope", cwd=copy, check=False)
    assert proc.returncode == 2 and "nope: no such run folder" in proc.stderr


def test_best_prints_the_report_or_the_best_so_far(copy):
    rdir = copy / "results" / "rea"
    assert nas_cli("best", "results/rea", cwd=copy).stdout == (rdir / "best.yaml").read_text()
    make_partial(copy)
    out = nas_cli("best", "rea", cwd=copy).stdout
    assert out.startswith("# no report yet (results/rea/best.yaml missing): best of 12 candidates")
    best = yaml.safe_load(out)
    rows = [json.loads(p.read_text()) for p in rdir.glob("gen_*/evals/c*/metrics.json")]
    top = max(r["val_acc"] for r in rows)
    assert best["metrics"]["val_acc"] == top and best["genome"] and best["training"]
    spec = rdir / f"gen_{best['generation']:03d}" / "candidates" / f"{best['candidate']}.yaml"
    assert best["arch"] == yaml.safe_load(spec.read_text())["arch"]


def test_compare_table_and_plot(finished, tmp_path):
    work, _ = finished
    out = nas_cli("compare", "results/rea", "random", "--out", str(tmp_path / "cmp.png"), cwd=work).stdout
    lines = out.splitlines()
    assert "evaluations to best" in lines[0]
    rows = {line.split()[0]: line.split() for line in lines[1:3]}
    for run, evaluations in (("rea", "14"), ("random", "10")):
        s = summary(work, run)
        assert rows[run][1:7] == [run, "nb201", "table", "0", f"{s['generations']}/{s['generations']}", evaluations]
        assert float(rows[run][8]) == s["best"]["val_acc"] and float(rows[run][9]) == s["best"]["test_acc"]
        history = list(csv.DictReader((work / "results" / run / "history.tsv").open(), delimiter="\t"))
        first = next(i for i, r in enumerate(history, 1) if float(r["val_acc"]) == s["best"]["val_acc"])
        assert rows[run][-2] == str(first) and rows[run][-1] == "table:table.csv:val"
        assert f"{run} best: {s['best']['arch']}" in out
    assert (tmp_path / "cmp.png").read_bytes()[:4] == b"\x89PNG"
    assert not list(tmp_path.glob(".cmp.png*"))  # written atomically, nothing left aside


def test_overview_page_has_every_generation_and_the_best(finished):
    work, _ = finished
    page = (work / layout.overview("results/rea")).read_text()
    assert page.count("<h2>Generation ") == 3 and summary(work, "rea")["best"]["arch"] in page
    assert "<tr><td>c05</td>" in page  # generation 0 has 6 candidates


def test_report_pictures_the_best_and_what_moved_the_objective(finished):
    work, _ = finished
    rdir = work / "results" / "rea"
    rows = read_tsv(rdir / "importance.tsv")
    assert list(rows[0]) == ["position", "choice", "effect", "std", "low", "high", "count"]
    assert [(r["position"], r["choice"]) for r in rows[:3]] == [("node1<-node0", op) for op in
                                                                 ("none", "skip_connect", "nor_conv_3x3")]
    assert len(rows) == 6 * 3 and sum(int(r["count"]) for r in rows[:3]) == 14
    for name in ("importance.png", "architecture.png"):
        assert (rdir / name).read_bytes()[:4] == b"\x89PNG"
    page = (rdir / "overview.html").read_text()
    # both pictures inline (the Snakemake report breaks relative links), and the table
    assert page.count('<img src="data:image/png;base64,') == 2 and "<td>node3&lt;-node2</td>" in page
    assert "problem:" not in page


def test_a_report_without_ok_candidates_says_so_in_its_pictures(copy):
    rdir = copy / "results" / "rea"
    for table in rdir.glob("gen_*/table.tsv"):
        rows = list(csv.DictReader(table.open(), delimiter="\t"))
        with table.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]), delimiter="\t", lineterminator="\n")
            writer.writeheader()
            writer.writerows({**r, "status": "diverged", "val_acc": "", "test_acc": ""} for r in rows)
    report(rdir, 3)
    assert (rdir / "importance.tsv").read_text() == "position\tchoice\teffect\tstd\tlow\thigh\tcount\n"
    assert (rdir / "architecture.png").read_bytes()[:4] == b"\x89PNG"
    page = (rdir / "overview.html").read_text()
    assert "Too few evaluated candidates" in page and "No candidate finished with status ok" in page


def test_the_interpretability_fragment_names_what_is_missing(copy, tmp_path):
    problems: list[str] = []
    assert load_importance(tmp_path / "importance.tsv", problems) == [] and "missing" in problems[0]
    (tmp_path / "importance.tsv").write_text("position\tchoice\nnode1\tnone\n")  # a table of something else
    assert load_importance(tmp_path / "importance.tsv", problems) == [] and "not an importance table" in problems[1]
    rows = load_importance(copy / "results" / "rea" / "importance.tsv", problems)
    (tmp_path / "broken.png").write_bytes(b"GIF89a")
    fragment = interpretability_html(tmp_path / "nope.png", rows, tmp_path / "broken.png", "val_acc")
    assert "architecture: picture missing" in fragment and "is not a PNG picture" in fragment
    assert "effect on val_acc (%)" in fragment and fragment.count("<tr><td>node") == 18


def test_snakemake_html_report(finished):
    work, config = finished
    snakemake(work, "--configfile", str(config), "--report", "report.html")
    page = (work / "report.html").read_text()
    assert "the best architecture and the table of" in page  # a caption
    for run in ("rea", "random"):
        assert summary(work, run)["best"]["arch"] in page
        assert f'"labels": {{"run": "{run}", "result": "progress plot"}}' in page
        assert f'"labels": {{"run": "{run}", "result": "operation importance"}}' in page
    assert "how much each choice at each position of" in page and "the best candidate's architecture, as" in page
