"""Blocks of generations: a long run planned one part at a time.

Snakemake plans every job a target needs before it runs the first, and the
plan of a search is one long chain: each generation's proposals need the
state the generation before left. Its checks of that chain grow faster than
the chain (a grouped training job's check walks back through every job before
it), so a run of 1,000 generations of 50 candidates was not planned after ten
minutes.

A run is therefore cut into blocks of whole generations, each of about
`execution.plan_candidates` candidates (a run shorter than one block is one
block, planned as before). The workflow plans a block once the block before
it has finished:

- the report asks for the tables of the finished blocks and of the first
  unfinished one; at that block's last generation a checkpoint (rule
  end_of_block, its file `layout.end_of_block`) stands for the rest, and once
  it has run Snakemake plans the next block;
- a block's first generation reads the state the block before left as a plain
  file, never declaring it, so that the plan of a block does not reach into
  the blocks before: the checks of a resumed run's plan stay those of one
  block. Where that state is not settled (missing; made under other settings
  than the config's now; or older than a file the generation reads, the
  settings, the earlier tables, a benchmark table, or one of those missing),
  it is about to be made again: the generation then waits on the checkpoint
  after it, which Snakemake runs again once the state is made again. (Declaring
  the state only then would change the generation's declared inputs, and
  Snakemake would run it again for that on every later call.)

What stays: every table of every block is a target of the report, so a
missing or failed job is made again; a changed setting re-runs the whole run,
each block after the one before; a damaged file moved aside is made again,
with what was made from it in its block; and the results are those of one
plan of the whole run, since nothing a step computes depends on when it was
planned.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


def block_length(run: dict[str, Any], plan_candidates: int) -> int:
    """Generations per block: as many as hold at most `plan_candidates`
    candidates (at least one), counting each generation at its largest size."""
    per_generation = max(run["population"], run["candidates"])
    return max(1, plan_candidates // per_generation)


def starts_block(generation: int, length: int) -> bool:
    """Whether a generation is the first of a block after the first block."""
    return generation > 0 and generation % length == 0


def block_ends(generations: int, length: int) -> list[int]:
    """The last generation of each block of a run with `generations`
    generations, but for the run's own last block (whose end is the run's)."""
    return list(range(length - 1, generations - 1, length))


def state_settled(state: str | os.PathLike, settings: str | os.PathLike, settings_text: str,
                  reads: list[str]) -> bool:
    """Whether a block's first generation may read the state the generation
    before left without declaring it: the state is there, the settings file
    holds `settings_text` (what the config would write now), and the settings
    and every other file the generation `reads` (the earlier tables, the
    evaluations' inputs) are there and no newer than the state. Otherwise
    Snakemake is about to make the state again, and the generation must wait."""
    try:
        made = os.stat(state).st_mtime
        if Path(settings).read_text() != settings_text:
            return False
        return all(os.stat(path).st_mtime <= made for path in [settings, *reads])
    except OSError:
        return False
