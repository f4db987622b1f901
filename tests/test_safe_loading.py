"""No code loads a file with pickle: a file under results/ must never be able to run code.

Scans the Python source of nas/ and scripts/ (syntax tree, so comments and
docstrings do not count) for pickle-based loaders.
"""

from __future__ import annotations

import ast

import pytest

from tests.helpers import REPO

PICKLING_MODULES = {"pickle", "cPickle", "_pickle", "dill", "cloudpickle", "joblib", "shelve", "marshal"}


def _is_true(node: ast.AST) -> bool:
    return isinstance(node, ast.Constant) and node.value is True


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return node.id if isinstance(node, ast.Name) else ""


def pickle_uses(source: str) -> list[tuple[int, str]]:
    """(line, what) of every pickle-based load or import in a Python source."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, f"import {a.name}") for a in node.names if a.name.split(".")[0] in PICKLING_MODULES]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in PICKLING_MODULES:
            found.append((node.lineno, f"from {node.module} import"))
        elif isinstance(node, ast.Call):
            name = _dotted(node.func)
            keywords = {k.arg: k.value for k in node.keywords}
            if name.endswith("torch.load"):
                if not _is_true(keywords.get("weights_only")):
                    found.append((node.lineno, "torch.load without weights_only=True"))
            elif name in ("np.load", "numpy.load") and _is_true(keywords.get("allow_pickle")):
                found.append((node.lineno, f"{name} with allow_pickle=True"))
        elif isinstance(node, ast.Attribute) and node.attr in ("read_pickle", "to_pickle") and not isinstance(
            getattr(node, "ctx", None), ast.Store
        ):
            found.append((node.lineno, node.attr))
    return sorted(set(found))


def test_no_code_loads_a_file_with_pickle():
    files = sorted((REPO / "nas").rglob("*.py")) + sorted((REPO / "scripts").rglob("*.py"))
    assert len(files) > 10
    findings = [
        f"{path.relative_to(REPO)}:{line}: {what}"
        for path in files
        for line, what in pickle_uses(path.read_text(encoding="utf-8"))
    ]
    assert not findings, "pickle-based loading:\n" + "\n".join(findings)


@pytest.mark.parametrize(
    "source, found",
    [
        ("import pickle\n", True),
        ("from joblib import load\n", True),
        ("import torch\nx = torch.load(p)\n", True),
        ("import torch\nx = torch.load(p, weights_only=False)\n", True),
        ("import torch\nx = torch.load(p, map_location='cpu', weights_only=True)\n", False),
        ("import numpy as np\nx = np.load(p, allow_pickle=True)\n", True),
        ("import numpy as np\nx = np.load(p)\n", False),
        ("import pandas as pd\nx = pd.read_pickle(p)\n", True),
        ("# pickle is not used here\n'''nor torch.load(p) in a docstring'''\n", False),
    ],
)
def test_the_scan_finds_what_it_looks_for(source, found):
    assert bool(pickle_uses(source)) is found
