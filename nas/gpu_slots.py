"""GPU slots on one machine: which GPU each local job's CUDA work runs on.

Snakemake's `--resources gpu=N` limits how many jobs run at once but tells no
job which GPU is its own, so without more every local training lands on GPU
0. The workflow therefore plans slots, `execution.local_gpus` x
`execution.trainings_per_gpu` of them, and hands the plan to its jobs in the
environment (`SLOTS_ENV`). A process that is about to use CUDA (`claim`, from
the training loop's `device_for`, before anything initialises CUDA) takes a
free slot: a lock file held with flock(2) for the rest of the process's life,
so the kernel releases the slot of a job that is killed, however it dies.
It then sets CUDA_VISIBLE_DEVICES to the slot's GPU, and CUDA, initialised
afterwards, sees that GPU alone. With every slot taken it waits for one.

A shared trainer's server never initialises CUDA: each forked child claims
its own slot as a job in its own process would. Inside a SLURM job the
scheduler's allocation is in charge, and no slot is taken.
"""

from __future__ import annotations

import fcntl
import os
import re
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

SLOTS_ENV = "SNAKENAS_GPU_SLOTS"
POLL_SECONDS = 0.2
# This process's slot, open until it exits: closing the file would release it.
_held: dict[str, Any] = {}


def local_gpus(setting: Any, environ: dict[str, str] | None = None, dev: Path = Path("/dev")) -> list[str]:
    """The GPUs of `execution.local_gpus`: a list as given, or for `auto` those of
    CUDA_VISIBLE_DEVICES when it is set, else the machine's /dev/nvidiaN devices."""
    if setting != "auto":
        return [str(g) for g in setting]
    environ = os.environ if environ is None else environ
    visible = environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return [g.strip() for g in visible.split(",") if g.strip() and g.strip() != "-1"]
    found = [int(m.group(1)) for p in (dev.iterdir() if dev.is_dir() else ()) if (m := re.fullmatch(r"nvidia(\d+)", p.name))]
    return [str(g) for g in sorted(found)]


def plan(gpus: list[str], per_gpu: int) -> str:
    """The slots as the jobs' environment carries them: "0,1x4" (GPUs 0 and 1, 4 slots each)."""
    return f"{','.join(gpus)}x{int(per_gpu)}" if gpus else ""


def slots(text: str) -> list[tuple[str, int]]:
    """(GPU, slot index) of a plan, spread over the GPUs first: the first jobs get a GPU each."""
    gpus, _, per_gpu = text.rpartition("x")
    names = [g for g in gpus.split(",") if g]
    return [(gpu, k) for k in range(int(per_gpu)) for gpu in names]


def lock_dir() -> Path:
    """The machine's slot locks, one folder per user (the jobs of every snakemake of
    that user share the GPUs, so they share the slots)."""
    return Path(os.environ.get("TMPDIR") or tempfile.gettempdir()) / f"snakenas-gpu-slots-{os.getuid()}"


def claim(log: Callable[[str], None] = lambda _: None) -> str | None:
    """Take a GPU slot for this process where the environment plans slots (waiting
    while all are taken) and show CUDA that slot's GPU only; its GPU, or None
    where no slot is planned (no local GPUs, or inside a SLURM job)."""
    if _held:
        return _held["gpu"]
    planned = os.environ.get(SLOTS_ENV, "")
    if not planned or os.environ.get("SLURM_JOB_ID"):
        return None
    folder = lock_dir()
    folder.mkdir(mode=0o700, exist_ok=True)
    waiting = False
    while True:
        for gpu, k in slots(planned):
            fd = os.open(folder / f"gpu{gpu}-slot{k}.lock", os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            # Who holds it, for a person looking at the folder.
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
            _held.update(gpu=gpu, slot=k, fd=fd)
            os.environ["CUDA_VISIBLE_DEVICES"] = gpu
            log(f"GPU {gpu} (slot {k} of {planned})")
            return gpu
        if not waiting:
            log(f"every GPU slot of {planned} is taken: waiting for one")
            waiting = True
        time.sleep(POLL_SECONDS)
