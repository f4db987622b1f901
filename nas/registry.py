"""Lazy registries: a name in a config -> the class that implements it.

Strategies, evaluators and tasks are registered as "module:Class" strings,
imported only when a run names them, so that a run's plan and its light steps
never import what another run needs (torch, for most of them). The import
test (tests/test_imports.py) reads these strings as import edges too, so a
registry cannot hide a cycle.
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any, Iterable, Mapping


def load(target: str) -> Any:
    """The object a "package.module:Name" string names."""
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


def lookup(registry: Mapping[str, str], kind: str, name: Any, error: type[Exception]) -> Any:
    """The registered object for `name`, or `error` naming the choices."""
    if name not in registry:
        raise error(f"unknown {kind} {name!r}; choose one of: {', '.join(sorted(registry))}")
    return load(registry[name])


def constructor_options(cls: type, fixed: Iterable[str] = ()) -> tuple[str, ...]:
    """The keyword options a class's constructor takes, less the `fixed` ones the
    caller passes itself (a strategy's space and population, say)."""
    fixed = set(fixed)
    return tuple(
        name for name, p in inspect.signature(cls).parameters.items()
        if name not in fixed and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    )
