"""Random search: every candidate drawn uniformly from the space."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from nas.strategies.base import Evaluated, Proposal, Strategy, known


class RandomSearch(Strategy):
    name = "random"

    def propose(
        self, state: dict[str, Any], history: Sequence[Evaluated], n: int, rng: np.random.Generator
    ) -> list[Proposal]:
        if not history:
            return self.initial(n, history, rng)
        return self.fill(n, known(history), rng, self._random)
