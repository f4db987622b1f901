"""The workflow's steps: read a run's files, do one step, write its files.

Each function is one `python -m nas ...` command and one Snakemake rule. They
read only what earlier steps wrote and write only their declared outputs,
atomically, so a step killed at any moment leaves nothing half-written.
"""

from __future__ import annotations

import os
import resource
import socket
import sys
from pathlib import Path
from typing import Any

from nas import layout, search
from nas.config import ConfigError, candidates_in, load_run, proposals_in, screen_proxy
from nas.evaluators import Evaluation, Evaluator, evaluator_for
from nas.evaluators.repeats import evaluate_repeated, write_evaluation
from nas.io import CorruptArtefact, read_json, read_tsv, read_yaml, write_dir, write_tsv, write_yaml
from nas.objectives import constraints_of, objectives_of
from nas.runner import strategy_for
from nas.strategies import Strategy


def state_before(rdir: str | Path, strategy: Strategy, generation: int) -> dict[str, Any]:
    """The strategy's state that generation `generation` starts from."""
    if generation == 0:
        return strategy.initial_state()
    return strategy.load_state(Path(layout.state_dir(rdir, generation - 1)))


def load_history(rdir: str | Path, run: dict[str, Any], generations: int) -> list[dict[str, str]]:
    """Rows of the tables of generations 0 .. generations-1, in order.

    Propose of generation g reads the tables before g without declaring them
    as inputs: they exist whenever state g-1 does (each aggregate writes its
    table with its state), and declaring them would cost the workflow
    O(generations^2) dependency edges.
    """
    rows: list[dict[str, str]] = []
    for g in range(generations):
        table = read_tsv(layout.table(rdir, g))
        if len(table) != candidates_in(run, g):
            # Cut at a line end, a truncated table still parses.
            raise CorruptArtefact(layout.table(rdir, g), f"{len(table)} rows, expected {candidates_in(run, g)}")
        rows.extend(table)
    return rows


def propose(rdir: str | Path, generation: int) -> list[dict[str, Any]]:
    run = load_run(rdir)
    strategy = strategy_for(run)
    state = state_before(rdir, strategy, generation)
    objectives, constraints = objectives_of(run), constraints_of(run)
    history = [search.evaluated(r, objectives, constraints) for r in load_history(rdir, run, generation)]
    specs = search.propose(run, generation, state, history, strategy)
    # With a screen by a proxy these are its proposals; the screen step keeps the candidates.
    folder = layout.proposals_dir if screen_proxy(run) else layout.candidates_dir
    _write_specs(folder(rdir, generation), specs)
    for s in specs:
        print(f"{s['candidate']} {s['origin']:<18} {s['arch']}", file=sys.stderr)
    return specs


def _write_specs(folder: str, specs: list[dict[str, Any]]) -> None:
    def write_specs(out: Path) -> None:
        for spec in specs:
            write_yaml(out / f"{spec['candidate']}.yaml", spec)

    write_dir(folder, write_specs)


def screen(rdir: str | Path, generation: int) -> list[dict[str, Any]]:
    """Score a generation's proposals by the run's proxy and keep its candidates:
    writes screen.tsv (every proposal's score), then the candidates folder."""
    run = load_run(rdir)
    if screen_proxy(run) is None:
        raise ConfigError(f"run {run['name']!r} has no screen by a zero-cost proxy (screen.by: zc_<proxy>)")
    proposals = [read_spec(layout.proposal_spec(rdir, generation, i)) for i in range(proposals_in(run, generation))]
    specs, rows = search.screen(run, generation, proposals, search.screen_scores(run, proposals))
    write_tsv(layout.screen_table(rdir, generation), search.screen_columns(run), rows)
    _write_specs(layout.candidates_dir(rdir, generation), specs)
    for s in specs:
        print(f"{s['candidate']} (was {s['screened']['proposal']}) {s['arch']}", file=sys.stderr)
    return specs


def read_spec(path: str | Path) -> dict[str, Any]:
    spec = read_yaml(path)
    if not isinstance(spec, dict) or "arch" not in spec:
        raise CorruptArtefact(path, "not a candidate spec")
    return spec


def evaluate(spec_path: str | Path, out_dir: str | Path, checkpoint: bool = False) -> dict[str, Any]:
    """Train (or look up) one candidate; writes epochs.csv, then metrics.json.

    With `checkpoint`, a training keeps a checkpoint in `out_dir` after each
    epoch and resumes from one it finds there."""
    spec = read_spec(spec_path)
    evaluator = evaluator_for(spec)
    result = evaluate_repeated(evaluator, spec, out_dir, checkpoint, log=_stderr)
    _write_evaluation(spec, result, out_dir, evaluator)
    return result.metrics


def evaluate_generation(rdir: str | Path, generation: int) -> list[dict[str, Any]]:
    """Evaluate every candidate of a generation in this one job (an evaluator whose
    `per_generation` is true); writes each one's epochs.csv and metrics.json."""
    run = load_run(rdir)
    n = candidates_in(run, generation)
    specs = [read_spec(layout.spec(rdir, generation, c)) for c in range(n)]
    out_dirs = [layout.eval_dir(rdir, generation, c) for c in range(n)]
    evaluator = evaluator_for(run)
    results = evaluator.evaluate_generation(specs, out_dirs)
    for spec, result, out_dir in zip(specs, results, out_dirs, strict=True):
        _write_evaluation(spec, result, out_dir, evaluator)
    return [r.metrics for r in results]


def _write_evaluation(spec: dict[str, Any], result: Evaluation, out_dir: str | Path, evaluator: Evaluator) -> None:
    """epochs.csv, then metrics.json, with where the job ran."""
    metrics = write_evaluation(out_dir, result, evaluator.epoch_columns, {"job": _where_it_ran()})
    print(f"{spec.get('candidate', '')} {metrics['status']} {evaluator.primary} {metrics.get(evaluator.primary)}",
          file=sys.stderr)


def _stderr(line: str) -> None:
    print(line, file=sys.stderr)


def _where_it_ran() -> dict[str, Any]:
    """Facts of the job, not of the candidate: kept in metrics.json, not in the tables."""
    return {
        "host": socket.gethostname(),
        "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
        # ru_maxrss is in KiB on Linux; the training job's peak, also when it
        # was forked from a shared trainer (whose benchmark file sees only the client).
        "max_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def aggregate(rdir: str | Path, generation: int) -> list[dict[str, Any]]:
    run = load_run(rdir)
    n = candidates_in(run, generation)
    specs = [read_spec(layout.spec(rdir, generation, c)) for c in range(n)]
    metrics = [read_json(layout.metrics(rdir, generation, c)) for c in range(n)]
    for c, m in enumerate(metrics):
        if not isinstance(m, dict) or "status" not in m:
            raise CorruptArtefact(layout.metrics(rdir, generation, c), "no status")
    strategy = strategy_for(run)
    rows, new_state = search.aggregate(run, state_before(rdir, strategy, generation), specs, metrics, strategy)
    write_tsv(layout.table(rdir, generation), search.columns(run), rows)
    write_dir(layout.state_dir(rdir, generation), lambda folder: strategy.save_state(new_state, folder))
    return rows
