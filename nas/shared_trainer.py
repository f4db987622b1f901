"""One process that imported torch once, forking a child per training job.

Starting `python -m nas train` costs seconds before any training (the
interpreter, torch, the task's libraries); for a small candidate that is most
of the job. Training jobs started by one snakemake process -- a whole local
run, or one group job on a cluster node -- therefore share a server: the
first job starts it, every job asks it over a Unix socket to fork a child that
runs `python -m nas train ...` with the job's own working directory,
environment, stdout and stderr (passed as file descriptors), and exits with
the child's status. So each job is still one Snakemake job with its own log,
exit status and retry, while the imports happen once per snakemake process.

The light steps of a local run (propose, aggregate, report, and the task
features, which need torch) are served the same way, so that they too pay
their imports once per snakemake process: the Snakefile exports the owner's
pid as `OWNER_ENV` to every job, and each step asks the server of its kind,
`torch` (the trainings and the task features) or `light` (imports nas's steps
and numpy, never torch; it costs the table runs nothing they would not pay).
Two kinds rather than one server whose torch comes later: a server busy
importing torch for seconds could fork nothing, and a light step waiting on
it would hold the run up.

The server leaves when the snakemake process that owns it is gone and it has
no child running, or after `IDLE_SECONDS` without work. A job whose client is
killed (Snakemake cancelling it) gets its child killed. Where no server can be
reached the job runs in its own process, as without a server. This module is
the server's side; the job's, which every job imports, is nas/handoff.py.
"""

from __future__ import annotations

import ctypes
import gc
import importlib
import os
import selectors
import signal
import socket
import sys
import time
import traceback
from pathlib import Path
from typing import Callable, NamedTuple, Sequence

from nas.handoff import OWNER_ENV, connect, decode_request

# What a forked child runs: `python -m nas`'s main, handed in by its dispatcher.
Entry = Callable[[Sequence[str]], int]

IDLE_SECONDS = 30.0
MAX_REQUEST = 1 << 20
# Set by the Snakefile to the libraries its runs' tasks import (Task.libraries, comma
# separated): what a trainer server imports before it forks. Unset: every task's.
WARM_ENV = "SNAKENAS_WARM_UP"
WARM_DEFAULT = ("sklearn.datasets", "torchvision")


def serve(path: str | Path, owner: int | None, entry: Entry, idle_seconds: float = IDLE_SECONDS,
          torch: bool = True) -> int:
    """Serve jobs until the owner is gone (or IDLE_SECONDS pass idle); each job's
    child runs `entry(argv)`, the command line's main. A `torch` server imports
    torch and the tasks' libraries first."""
    if torch:
        _warm_up()
    # What the imports made stays out of the children's collections: a full one
    # would touch, and so copy, every page of it in each child.
    gc.freeze()

    path = Path(path)
    listener = _bind(path)
    if listener is None:
        return 0  # another server of the same owner won the race
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ)
    jobs: dict[int, _Job] = {}
    exiting: set[int] = set()  # children that said their status, not reaped yet
    last_work = time.monotonic()
    try:
        while True:
            for key, _ in selector.select(timeout=0.05):
                if key.fileobj is listener:
                    conn, _ = listener.accept()
                    job = _fork_job(conn, listener, jobs, entry)
                    if job is not None:
                        jobs[job.pid] = job
                        selector.register(conn, selectors.EVENT_READ, job.pid)
                        selector.register(job.done, selectors.EVENT_READ, job.pid)
                    continue
                job = jobs.pop(key.data, None)
                if job is None:
                    continue  # both its ends turned readable at once: handled
                selector.unregister(job.conn)
                selector.unregister(job.done)
                if key.fileobj is job.conn:
                    # The client went away (killed): so does its training.
                    _kill(job.pid)
                    code = None
                else:
                    code = _status(job)
                if code is not None:
                    _reply(job.conn, code)
                job.conn.close()
                os.close(job.done)
                exiting.add(job.pid)
                last_work = time.monotonic()
            exiting -= _reaped(exiting)
            owner_gone = owner is not None and not _alive(owner)
            if not jobs and (owner_gone or time.monotonic() - last_work > idle_seconds):
                return 0
    finally:
        for pid in jobs:
            _kill(pid)
        selector.close()
        listener.close()
        path.unlink(missing_ok=True)
        log = Path(f"{path}.log")
        if log.exists() and log.stat().st_size == 0:
            log.unlink()


class _Job(NamedTuple):
    pid: int
    conn: socket.socket  # to the job's client: its exit status goes there
    # The read end of a pipe the child writes its exit status to, before it
    # exits: the job hears at once, not after the teardown of a process the
    # size of torch (tens of ms), nor at the loop's next poll.
    done: int


def _status(job: _Job) -> int:
    """The exit status of a job whose pipe turned readable: what its child wrote,
    or (it wrote nothing: killed) what waiting for it says."""
    try:
        said = os.read(job.done, 16)
    except OSError:
        said = b""
    if said.strip():
        return int(said)
    _, status = os.waitpid(job.pid, 0)
    return os.waitstatus_to_exitcode(status)


def _warm_up() -> None:
    """Import once what every training job would: torch and the libraries of the
    runs' tasks (`WARM_ENV`; the caller has imported the training step itself).
    Only those: torchvision alone costs a digits run 1.5 s that it never uses."""
    import torch

    named = os.environ.get(WARM_ENV)
    for library in WARM_DEFAULT if named is None else [n for n in named.split(",") if n]:
        importlib.import_module(library)
    # The first optimizer imports torch._dynamo, seconds on its own. Nothing
    # here runs a parallel kernel, so no OpenMP pool exists to break in a fork.
    torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)


def _bind(path: Path) -> socket.socket | None:
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_umask = os.umask(0o077)  # the socket is its user's only
    try:
        listener.bind(str(path))
    except OSError:
        if connect(str(path)) is not None:
            listener.close()
            return None
        path.unlink(missing_ok=True)  # left by a server that died
        listener.bind(str(path))
    finally:
        os.umask(old_umask)
    listener.listen(64)
    return listener


def _fork_job(conn: socket.socket, listener: socket.socket, jobs: dict[int, _Job], entry: Entry) -> _Job | None:
    try:
        message, fds, _, _ = socket.recv_fds(conn, MAX_REQUEST, 3)
        argv, cwd, env = decode_request(message)
    except (OSError, ValueError):
        conn.close()
        return None
    done, said = os.pipe()
    pid = os.fork()
    if pid:
        os.close(said)
        for fd in fds:
            os.close(fd)
        return _Job(pid, conn, done)
    # The child: become the job, then leave without the server's cleanup.
    code = 1
    try:
        listener.close()
        for other in jobs.values():
            other.conn.close()
            os.close(other.done)
        conn.close()
        os.close(done)
        _die_with_parent()
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
            os.close(fd)
        os.chdir(cwd)
        os.environ.clear()
        os.environ.update(env)
        # The child runs the step itself: handed to a server again, it would fork forever.
        os.environ.pop(OWNER_ENV, None)
        code = entry(argv)
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    except BaseException:
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        try:
            os.write(said, str(code).encode())
        except OSError:
            pass  # the server is gone: so is the job
        os._exit(code)


def _die_with_parent() -> None:
    """A training whose server is killed ends too: it would write outputs no
    snakemake waits for any more."""
    PR_SET_PDEATHSIG = 1
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        pass  # not Linux: the server still kills children of vanished clients
    if os.getppid() == 1:  # the server died before prctl took hold
        os._exit(1)


def _reaped(pids: set[int]) -> set[int]:
    """Those of the children `pids` that are gone (now reaped)."""
    gone = set()
    for pid in pids:
        try:
            if os.waitpid(pid, os.WNOHANG)[0]:
                gone.add(pid)
        except ChildProcessError:
            gone.add(pid)  # reaped already (by _status)
    return gone


def _reply(conn: socket.socket, code: int) -> None:
    try:
        conn.sendall(str(code).encode())
    except OSError:
        pass  # the client is gone; nobody to tell


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
