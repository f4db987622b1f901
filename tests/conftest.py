"""Fixtures and collection order of the suite; shared helpers are in tests/helpers.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import write_nb201_table


@pytest.fixture
def nb201_table(tmp_path: Path) -> Path:
    return write_nb201_table(tmp_path / "table.csv")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # The SLURM test last: it stops its cluster at the end, and with SLURM
    # installed but stopped every later snakemake start would wait ~9 s for
    # `scontrol`, which the slurm executor plugin asks at import.
    items.sort(key=lambda item: item.path.name == "test_slurm.py")
