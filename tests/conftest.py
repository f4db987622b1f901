"""Fixtures and collection order of the suite; shared helpers are in tests/helpers.py."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from tests.helpers import write_nb201_table

# Decoded data sets are cached (nas/tasks/memory.py): the suite's go to a folder
# of its own, never the user's ~/.cache, and its snakemake jobs inherit it.
os.environ["SNAKENAS_CACHE"] = tempfile.mkdtemp(prefix="snakenas-test-cache-")


@pytest.fixture
def nb201_table(tmp_path: Path) -> Path:
    return write_nb201_table(tmp_path / "table.csv")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # The SLURM test last in a plain `pytest tests` (make test runs it on its
    # own): it stops its cluster at the end, and a later snakemake outside the
    # tests' stub (tests/no-slurm) would wait ~9 s for `scontrol` at start.
    items.sort(key=lambda item: item.path.name == "test_slurm.py")
