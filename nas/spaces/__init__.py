"""Search spaces by name. Importing this stays torch-free."""

from __future__ import annotations

from typing import Any

from nas.spaces.base import Genome, SearchSpace, SpaceError
from nas.spaces.chain import ChainSpace
from nas.spaces.nb201 import NB201Space

SPACES: dict[str, type[SearchSpace]] = {"nb201": NB201Space, "chain": ChainSpace}


def make_space(cfg: dict[str, Any]) -> SearchSpace:
    """Build a space from its config section: {'name': ..., **options}."""
    options = dict(cfg)
    name = options.pop("name")
    if name not in SPACES:
        raise SpaceError(f"unknown space {name!r}; choose one of: {', '.join(sorted(SPACES))}")
    try:
        return SPACES[name](**options)
    except TypeError as e:  # an option this space does not take
        raise SpaceError(f"space {name!r}: {e}") from None


__all__ = ["SPACES", "Genome", "SearchSpace", "SpaceError", "make_space"]
