"""The workflow's steps: read a run's files, do one step, write its files.

Each function is one `python -m nas ...` command and one Snakemake rule. They
read only what earlier steps wrote and write only their declared outputs,
atomically, so a step killed at any moment leaves nothing half-written.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable

from nas import layout, search
from nas.config import candidates_in
from nas.io import CorruptArtefact, read_json, read_tsv, read_yaml, write_json, write_tsv, write_yaml
from nas.strategies import Strategy


def load_run(rdir: str | Path) -> dict[str, Any]:
    run = read_yaml(layout.run_config(rdir))
    if not isinstance(run, dict) or "name" not in run:
        raise CorruptArtefact(layout.run_config(rdir), "not a run settings file")
    return run


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


def _write_dir(target: str | Path, fill: Callable[[Path], None]) -> None:
    """Let `fill` write a fresh folder, then move it into place in one rename."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}."))
    try:
        fill(tmp)
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def propose(rdir: str | Path, generation: int) -> list[dict[str, Any]]:
    run = load_run(rdir)
    strategy = search.strategy_for(run)
    state = state_before(rdir, strategy, generation)
    history = [search.evaluated(r) for r in load_history(rdir, run, generation)]
    specs = search.propose(run, generation, state, history, strategy)

    def write_specs(folder: Path) -> None:
        for spec in specs:
            write_yaml(folder / f"{spec['candidate']}.yaml", spec)

    _write_dir(layout.candidates_dir(rdir, generation), write_specs)
    for s in specs:
        print(f"{s['candidate']} {s['origin']:<18} {s['arch']}", file=sys.stderr)
    return specs


def evaluate(spec_path: str | Path, out_dir: str | Path, checkpoint: bool = False) -> dict[str, Any]:
    """Train (or look up) one candidate; writes epochs.csv, then metrics.json.

    With `checkpoint`, a training keeps a checkpoint in `out_dir` after each
    epoch and resumes from one it finds there."""
    spec = read_yaml(spec_path)
    if not isinstance(spec, dict) or "arch" not in spec:
        raise CorruptArtefact(spec_path, "not a candidate spec")
    epochs: list[dict[str, Any]] = []
    if spec["evaluator"]["name"] == "table":
        from nas.evaluators.table import evaluate as look_up

        metrics = look_up(spec)
    else:
        from nas.evaluators.train import evaluate as train

        result = train(spec, checkpoint=layout.checkpoint_in(out_dir) if checkpoint else None)
        metrics, epochs = result.metrics, result.epochs
    metrics["job"] = _where_it_ran()
    out_dir = Path(out_dir)
    write_tsv(out_dir / "epochs.csv", EPOCH_COLUMNS, epochs)
    write_json(out_dir / "metrics.json", metrics)
    print(f"{spec.get('candidate', '')} {metrics['status']} val_acc {metrics['val_acc']}", file=sys.stderr)
    return metrics


def _where_it_ran() -> dict[str, Any]:
    """Facts of the job, not of the candidate: kept in metrics.json, not in the tables."""
    import resource
    import socket

    return {
        "host": socket.gethostname(),
        "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
        # ru_maxrss is in KiB on Linux; the training job's peak, also when it
        # was forked from a shared trainer (whose benchmark file sees only the client).
        "max_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


EPOCH_COLUMNS = ("epoch", "train_loss", "train_acc", "val_loss", "val_acc", "seconds")


def aggregate(rdir: str | Path, generation: int) -> list[dict[str, Any]]:
    run = load_run(rdir)
    n = candidates_in(run, generation)
    specs = [read_yaml(layout.spec(rdir, generation, c)) for c in range(n)]
    metrics = [read_json(layout.metrics(rdir, generation, c)) for c in range(n)]
    for c, m in enumerate(metrics):
        if not isinstance(m, dict) or "status" not in m:
            raise CorruptArtefact(layout.metrics(rdir, generation, c), "no status")
    strategy = search.strategy_for(run)
    rows, new_state = search.aggregate(run, state_before(rdir, strategy, generation), specs, metrics, strategy)
    write_tsv(layout.table(rdir, generation), search.COLUMNS, rows)
    _write_dir(layout.state_dir(rdir, generation), lambda folder: strategy.save_state(new_state, folder))
    return rows
