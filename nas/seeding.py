"""Random state derived from where a step sits in the search.

Every step asks for its generator by (run seed, generation, step name,
candidate index). Nothing depends on the order in which jobs ran or on the
process, so a resumed search draws exactly what an uninterrupted one drew.
"""

from __future__ import annotations

import zlib

import numpy as np


def _step_code(step: str) -> int:
    # crc32 is stable across processes, unlike hash() of a str.
    return zlib.crc32(step.encode("utf-8"))


def seed_sequence(seed: int, generation: int, step: str, index: int = 0) -> np.random.SeedSequence:
    return np.random.SeedSequence([int(seed), int(generation), _step_code(step), int(index)])


def rng_for(seed: int, generation: int, step: str, index: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed_sequence(seed, generation, step, index))


def int_seed(seed: int, generation: int, step: str, index: int = 0) -> int:
    """A 31-bit integer seed for libraries that take an int (torch.manual_seed)."""
    return int(seed_sequence(seed, generation, step, index).generate_state(1)[0] & 0x7FFFFFFF)
