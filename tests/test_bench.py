"""The strategy benchmark on a small synthetic table (the real one is not needed)."""

from __future__ import annotations

import csv

import yaml

from nas.bench import BUDGETS, bench_runs, problem, run_bench
from tests.helpers import OPS3, nas_cli


def bench_config(tmp_path, strategies=("random", "rea", "ls")):
    runs = {
        "random": {"population": 5, "candidates": 5, "strategy": {"name": "random"}},
        "rea": {"population": 10, "candidates": 5, "strategy": {"name": "rea", "sample_size": 3}},
        "ls": {"population": 5, "candidates": 1, "strategy": {"name": "ls", "guide": "predictor"}},
        "ga": {"population": 10, "candidates": 5, "strategy": {"name": "ga"}},
    }
    config = {"defaults": {"space": {"name": "nb201", "ops": OPS3}}, "runs": {s: runs[s] for s in strategies}}
    path = tmp_path / "bench.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def read(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f, delimiter="\t"))


def test_bench_writes_curves_summary_and_plot(tmp_path, nb201_table):
    out = tmp_path / "out"
    summary = run_bench(str(nb201_table), "val", ["random", "rea", "ls"], seeds=6, budget=60, out=out,
                        arch_column="arch", jobs=2, config_path=bench_config(tmp_path))
    curves = read(out / "curves.tsv")
    assert len(curves) == 3 * 6 * 60
    for strategy in ("random", "rea", "ls"):
        for seed in range(6):
            values = [float(r["best_so_far"]) for r in curves if r["strategy"] == strategy and r["seed"] == str(seed)]
            assert len(values) == 60 and values == sorted(values)
    rows = read(out / "summary.tsv")
    assert [(r["strategy"], int(r["budget"])) for r in rows] == [
        (s, b) for s in ("random", "rea", "ls") for b in BUDGETS if b <= 60
    ]
    assert [float(r["mean"]) for r in rows] == [r["mean"] for r in summary]
    optimum = 50 + sum(2.0 * (1 + i) for i in range(6))
    for r in rows:
        assert abs(float(r["regret"]) - (optimum - float(r["mean"]))) < 1e-3
    assert (out / "curves.png").read_bytes()[:4] == b"\x89PNG"


def test_guided_strategies_beat_random_on_a_smooth_table(tmp_path, nb201_table):
    summary = run_bench(str(nb201_table), "val", ["random", "rea", "ls", "ga"], seeds=10, budget=50,
                        out=tmp_path / "out", arch_column="arch", jobs=1, config_path=bench_config(tmp_path, ("random", "rea", "ls", "ga")))
    at50 = {r["strategy"]: r["mean"] for r in summary if r["budget"] == 50}
    assert at50["rea"] > at50["random"] and at50["ls"] > at50["random"] and at50["ga"] > at50["random"]


def test_same_seeds_give_the_same_curves(tmp_path, nb201_table):
    config = bench_config(tmp_path, ("rea",))
    for out, jobs in (("a", 1), ("b", 2)):
        run_bench(str(nb201_table), "val", ["rea"], seeds=4, budget=30, out=tmp_path / out, arch_column="arch",
                  jobs=jobs, config_path=config)
    assert (tmp_path / "a" / "curves.tsv").read_text() == (tmp_path / "b" / "curves.tsv").read_text()


def test_bench_command_line(tmp_path, nb201_table):
    proc = nas_cli("bench", "--table", str(nb201_table), "--metric", "val", "--arch-column", "arch",
                   "--strategies", "random,rea", "--seeds", "3", "--budget", "25", "--out", str(tmp_path / "o"),
                   "--config", str(bench_config(tmp_path, ("random", "rea"))), cwd=tmp_path)
    assert "6 searches of 25 queries" in proc.stdout and "rea" in proc.stdout
    bad = nas_cli("bench", "--table", str(nb201_table), "--metric", "nope", "--arch-column", "arch",
                  "--strategies", "rea", "--out", str(tmp_path / "o"), "--config", str(bench_config(tmp_path, ("rea",))),
                  cwd=tmp_path, check=False)
    assert bad.returncode == 2 and "no column 'nope'" in bad.stderr


def test_bench_relabels_the_operations(tmp_path, nb201_table):
    """--ops: the same search with every genome index meaning another operation."""
    config = bench_config(tmp_path, ("rea",))
    relabelled = list(reversed(OPS3))
    assert bench_runs(problem([str(nb201_table)], "arch", "val"), ["rea"], config, ops=relabelled)["rea"]["space"][
        "ops"] == relabelled
    for out, ops in (("plain", ()), ("relabelled", relabelled)):
        run_bench(str(nb201_table), "val", ["rea"], seeds=3, budget=20, out=tmp_path / out, arch_column="arch",
                  jobs=1, config_path=config, ops=ops)
    plain, other = (read(tmp_path / o / "curves.tsv") for o in ("plain", "relabelled"))
    assert len(plain) == len(other) == 60 and plain != other
