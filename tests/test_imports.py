"""The import structure of nas/: no cycle, and imports inside functions only for heavy libraries.

Every import of every module counts, the ones written inside functions
included (an import of nas.a.b is an edge to nas.a.b), and so do the
"nas.module:Name" strings of the lazy registries (nas/registry.py), which
import by name: a cycle cannot hide behind either.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from tests.helpers import REPO

PACKAGE = REPO / "nas"
# What an import inside a function may bring in: libraries whose import costs
# seconds or pulls in a tree the light steps must not pay for.
HEAVY = ("torch", "torchvision", "matplotlib", "jsonschema", "sklearn", "scipy", "PIL", "onnx", "onnxruntime", "onnxscript")
# The command dispatcher imports each command's modules in its branch, so that
# `train --shared-trainer` and `status` stay fast.
DISPATCHER = "nas.cli"
REGISTRY_STRING = re.compile(r"(nas(?:\.\w+)+):\w+")


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _target(module: str, name: str | None) -> str:
    """`from module import name`: the submodule when `name` is one, else the module."""
    return f"{module}.{name}" if name and f"{module}.{name}" in MODULES else module


def _absolute(node: ast.ImportFrom, importer: str) -> str:
    if not node.level:
        return node.module or ""
    package = importer if MODULES[importer].name == "__init__.py" else importer.rpartition(".")[0]
    for _ in range(node.level - 1):
        package = package.rpartition(".")[0]
    return f"{package}.{node.module}" if node.module else package


def imports(module: str) -> list[tuple[str, bool]]:
    """(imported nas module, written inside a function) for every import of `module`."""
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
    inside: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            inside.update(id(sub) for sub in ast.walk(node) if sub is not node)
    found = []
    for node in ast.walk(tree):
        nested = id(node) in inside
        if isinstance(node, ast.Import):
            found += [(alias.name, nested) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(node, module)
            found += [(_target(base, alias.name), nested) for alias in node.names]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            found += [(m.group(1), False) for m in REGISTRY_STRING.finditer(node.value) if m.group(1) in MODULES]
    return found


def graph() -> dict[str, set[str]]:
    return {m: {t for t, _ in imports(m) if t in MODULES and t != m} for m in MODULES}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each as a cycle's members."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def test_the_walk_sees_function_level_imports_and_registry_strings():
    edges = graph()
    assert "nas.steps" in edges["nas.cli"]  # imported inside _dispatch
    assert "nas.strategies.reinforce" in edges["nas.strategies"]  # a registry string
    assert "nas.evaluators.training" in edges["nas.evaluators.train"]  # the training loop, by name


def test_cycle_finder_finds_a_planted_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles_in_nas():
    assert cycles(graph()) == []


def test_imports_inside_functions_are_for_heavy_libraries_only():
    """Any other import inside a function hides an edge (and so, often, a cycle)."""
    bad = []
    for module in MODULES:
        if module == DISPATCHER:
            continue
        tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
        for fn in ast.walk(tree):
            if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(fn):
                names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                         else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
                bad += [f"{module}:{node.lineno} imports {n}" for n in names if n.split(".")[0] not in HEAVY]
    assert bad == []
