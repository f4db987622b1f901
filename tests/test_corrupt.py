"""A damaged artefact (a crash or a full disk) is detected, moved aside and re-made.

Each case damages one file of a finished or half-finished run, runs the real
snakemake: the step that reads it fails naming the file and moves it aside;
the next snakemake re-makes it, and the search ends exactly as an undamaged
one.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from nas import layout
from tests.helpers import snakemake, table_run, write_config, write_nb201_table

RUN = "results/r"
REPORT = [f(RUN) for f in (layout.history, layout.summary, layout.best, layout.progress_plot, layout.overview)]


def config(tmp: Path, table: Path, generations: int) -> None:
    write_config(tmp / "config.yaml", {"r": table_run(table, generations=generations)})


@pytest.fixture(scope="module")
def table(tmp_path_factory) -> Path:
    return write_nb201_table(tmp_path_factory.mktemp("table") / "table.csv")


@pytest.fixture(scope="module")
def reference(tmp_path_factory, table: Path) -> str:
    """history.tsv of the undamaged 3-generation search."""
    ref = tmp_path_factory.mktemp("reference")
    config(ref, table, 3)
    snakemake(ref, "--configfile", "config.yaml")
    return (ref / RUN / "history.tsv").read_text()


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def detected_then_re_made(work: Path, message: str, reference: str) -> str:
    """One snakemake fails naming the damage; the next ends as the undamaged
    search. Returns the second one's output."""
    failed = snakemake(work, "--configfile", "config.yaml", check=False)
    assert failed.returncode != 0
    assert message in failed.stderr + failed.stdout
    again = snakemake(work, "--configfile", "config.yaml")
    assert (work / RUN / "history.tsv").read_text() == reference
    return again.stdout + again.stderr


def test_truncated_metrics_are_re_made(tmp_path: Path, table: Path, reference: str) -> None:
    work = tmp_path / "work"
    work.mkdir()
    config(work, table, 3)
    snakemake(work, "--configfile", "config.yaml")
    # As if the run had died after training generation 2 but before its
    # aggregate, with one metrics file cut short.
    metrics = work / layout.metrics(RUN, 2, 2)
    truncate(metrics)
    shutil.rmtree(work / layout.state_dir(RUN, 2))
    for path in (layout.table(RUN, 2), *REPORT):
        (work / path).unlink()

    output = detected_then_re_made(work, f"{layout.metrics(RUN, 2, 2)}: truncated or not valid JSON", reference)
    assert "rule evaluate_later_4:" in output
    assert metrics.with_name("metrics.json.corrupt").exists()


def test_corrupt_state_is_re_made(tmp_path: Path, table: Path, reference: str) -> None:
    work = tmp_path / "work"
    work.mkdir()
    config(work, table, 1)
    snakemake(work, "--configfile", "config.yaml")
    state = work / layout.state_dir(RUN, 0) / "state.json"
    state.write_text('{"population": [')
    config(work, table, 3)  # extend the run: propose 1 reads that state

    detected_then_re_made(work, f"{layout.state_dir(RUN, 0)}/state.json: truncated or not valid JSON", reference)
    assert (work / f"{layout.state_dir(RUN, 0)}.corrupt").is_dir()


def test_table_cut_at_a_line_end_is_detected(tmp_path: Path, table: Path, reference: str) -> None:
    work = tmp_path / "work"
    work.mkdir()
    config(work, table, 3)
    snakemake(work, "--configfile", "config.yaml")
    cut = work / layout.table(RUN, 0)
    cut.write_text("".join(cut.read_text().splitlines(keepends=True)[:-1]))
    for path in REPORT:  # as if not yet reported: the report reads every table
        (work / path).unlink()

    detected_then_re_made(work, f"{layout.table(RUN, 0)}: 5 rows, expected 6", reference)
