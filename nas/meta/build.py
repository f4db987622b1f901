"""The meta-model build step: knowledge base + model in one folder (results/meta/)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from nas import layout
from nas.config import load_run
from nas.meta.knowledge import Knowledge, finished_runs, from_runs, from_table
from nas.meta.model import MetaModel

DEFAULT_SPACE = {"name": "nb201"}


def build(
    out: str | Path,
    runs: Sequence[str | Path] | None = None,
    results: str | Path = layout.RESULTS,
    tables: Sequence[dict[str, Any]] = (),
    space: dict[str, Any] | None = None,
) -> MetaModel:
    """Read the runs (default: every finished run under `results`, except `out`)
    and the tables into a knowledge base, fit the meta-model, write both to `out`.

    tables: [{path, arch_column (default ArchitectureString), columns: {column: features or None}}].
    space: the space the predictor encodes; default the first run's, else nb201."""
    out = Path(out)
    if runs is None:
        runs = [r for r in finished_runs(results) if r.resolve() != out.resolve()]
    knowledge = from_runs(runs, Knowledge())
    for t in tables:
        from_table(t["path"], t.get("arch_column", "ArchitectureString"), t["columns"], knowledge)
    if space is None:
        space = load_run(runs[0])["space"] if runs else DEFAULT_SPACE
    model = MetaModel.build(knowledge, space)
    knowledge.write(out)
    model.save(out)
    return model
