"""File I/O for run artefacts: atomic writes, safe loads, deterministic text.

Every artefact is written to a temporary file in the target folder and renamed
into place, so a crash leaves either the old file or the new one, never half
of one. Loads use safe loaders and name the file that is broken, so a corrupt
artefact is reported (and can be re-made) instead of silently read.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import yaml


class ArtefactError(ValueError):
    """An artefact that is missing, truncated or malformed."""


class CorruptArtefact(ArtefactError):
    """An artefact that exists but cannot be read back: truncated (a crash or a
    full disk), or edited. `path` names it, so the step can move it aside and
    the next `snakemake` re-make it."""

    def __init__(self, path: str | os.PathLike, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = Path(path)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# mkstemp makes its file readable by its owner only; an artefact (a result, an
# exported model) gets the mode any new file gets here, as `open` would give it.
FILE_MODE = 0o666 & ~_umask()


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, FILE_MODE)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def dump_yaml(data: Any) -> str:
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=None, width=100)


def write_yaml(path: str | os.PathLike, data: Any) -> None:
    atomic_write_text(path, dump_yaml(data))


def write_json(path: str | os.PathLike, data: Any) -> None:
    atomic_write_text(path, json.dumps(_json_safe(data), indent=2) + "\n")


def write_figure(path: str | os.PathLike, fig: Any) -> None:
    """A matplotlib figure as PNG, atomically; no timestamp, so equal plots give equal bytes."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())


def _json_safe(value: Any) -> Any:
    """NaN and inf are not JSON: write them as null so every reader can parse the file."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ArtefactError(f"{path}: file not found") from None


def read_yaml(path: str | os.PathLike) -> Any:
    path = Path(path)
    try:
        return yaml.safe_load(_read_text(path))
    except yaml.YAMLError as e:
        raise CorruptArtefact(path, f"not valid YAML ({e})") from None


def read_json(path: str | os.PathLike) -> Any:
    path = Path(path)
    try:
        return json.loads(_read_text(path))
    except json.JSONDecodeError as e:
        raise CorruptArtefact(path, f"truncated or not valid JSON ({e})") from None


def format_cell(value: Any) -> str:
    """One TSV cell. Floats get a fixed number of decimals so reruns give equal bytes."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)  # nan, inf, -inf: what float() reads back
        return f"{value:.6f}".rstrip("0").rstrip(".")
    if isinstance(value, (list, tuple)):
        return ",".join(format_cell(v) for v in value)
    return str(value)


def tsv_text(columns: Sequence[str], rows: Iterable[dict[str, Any]]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, delimiter="\t", lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([format_cell(row.get(c)) for c in columns])
    return buf.getvalue()


def write_tsv(path: str | os.PathLike, columns: Sequence[str], rows: Iterable[dict[str, Any]]) -> None:
    atomic_write_text(path, tsv_text(columns, rows))


def read_tsv(path: str | os.PathLike) -> list[dict[str, str]]:
    """Rows as dicts of strings; a file without its header is an error."""
    path = Path(path)
    text = _read_text(path)
    if not text.endswith("\n"):
        raise CorruptArtefact(path, "truncated (no final newline)")
    reader = csv.DictReader(io.StringIO(text), delimiter="\t")
    rows = list(reader)
    if reader.fieldnames is None:
        raise CorruptArtefact(path, "empty table, header missing")
    for i, row in enumerate(rows, start=2):
        if None in row or any(v is None for v in row.values()):
            raise CorruptArtefact(path, f"line {i} has a different number of cells than the header")
    return rows


def write_dir(target: str | Path, fill: Callable[[Path], None]) -> None:
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
