"""The one checker of a config section's options: names, then values.

Spaces, strategies, tasks and evaluators take their options as constructor
keywords (or a mapping); these functions refuse what does not fit with one
shape of message, `<owner> option <name>=<value>: <what it must be>`, raised
as the caller's own error class, so that nas.config can name the key.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Iterable, Sequence

import numpy as np


def unknown_option(kind: str, name: Any, given: Iterable[str], allowed: Iterable[str]) -> tuple[str, str] | None:
    """The first key of a config section (less `name`) that the class it names does
    not take, with the message that says so; None when every key is an option."""
    allowed = sorted(set(allowed))
    for key in given:
        if key != "name" and key not in allowed:
            taken = f"its options: {', '.join(allowed)}" if allowed else f"{kind} {name!r} has no options"
            return key, f"{kind} {name!r} takes no option {key!r}; {taken}"
    return None


def is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def choice(owner: str, option: str, value: Any, allowed: Sequence[Any], error: type[Exception]) -> Any:
    """One of `allowed`."""
    if value not in allowed:
        raise error(f"{owner} option {option}={value!r}: choose one of: {', '.join(map(str, allowed))}")
    return value


def integer(owner: str, option: str, value: Any, low: int, error: type[Exception]) -> int:
    """A whole number of at least `low`."""
    if not is_int(value) or value < low:
        raise error(f"{owner} option {option}={value!r}: must be an integer >= {low}")
    return int(value)


def number(owner: str, option: str, value: Any, ok: Callable[[float], bool], rule: str,
           error: type[Exception]) -> float:
    """A finite number for which `ok` holds (`rule` says which, e.g. "in [0, 1)")."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or not math.isfinite(value) \
            or not ok(value):
        raise error(f"{owner} option {option}={value!r}: must be a number {rule}")
    return float(value)


def values(owner: str, option: str, given: Any, allowed: Callable[[Any], bool], rule: str,
           error: type[Exception]) -> tuple:
    """A non-empty list of distinct values, each `allowed` (`rule` says which)."""
    if isinstance(given, str) or not isinstance(given, Sequence) or not given:
        raise error(f"{owner} option {option}={given!r}: must be a non-empty list ({rule})")
    bad = [v for v in given if not allowed(v)]
    if bad:
        raise error(f"{owner} option {option}: {bad[0]!r} is not allowed ({rule})")
    if len(set(given)) != len(given):
        raise error(f"{owner} option {option}={list(given)!r}: each value may appear only once")
    return tuple(given)
