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
reached the job runs in its own process, as without a server.
"""

from __future__ import annotations

import ctypes
import gc
import json
import os
import selectors
import signal
import socket
import sys
import time
import traceback
from pathlib import Path
from typing import Callable, NamedTuple, Sequence

# What a forked child runs: `python -m nas`'s main, handed in by its dispatcher.
Entry = Callable[[Sequence[str]], int]

IDLE_SECONDS = 30.0
START_TIMEOUT = 120.0
MAX_REQUEST = 1 << 20
# Set for a job (to its snakemake's pid) by the Snakefile: the job's steps use that one's servers.
OWNER_ENV = "SNAKENAS_SERVER_OWNER"


def server_for(owner: int, torch: bool = True) -> tuple[Path, int | None] | None:
    """The socket of the server (of the torch or the light kind) a job started
    by snakemake process `owner` uses, and the pid whose end ends that server
    (None: only idleness does); None where a server cannot help.

    Inside a SLURM job every job of the group runs in its own job step, under
    its own snakemake process, so there the server is the SLURM job's. Where
    SLURM confines each step to a cgroup, everything a step started ends with
    it: a server would serve one job, so there is none.
    """
    base = Path(os.environ.get("TMPDIR") or "/tmp")
    kind = "trainer" if torch else "steps"
    slurm_job = os.environ.get("SLURM_JOB_ID")
    if slurm_job:
        if _in_step_cgroup():
            return None
        return base / f"snakenas-{kind}-{os.getuid()}-slurm{slurm_job}.sock", None
    return base / f"snakenas-{kind}-{os.getuid()}-{owner}.sock", owner


def step_owner() -> int | None:
    """The snakemake process whose servers this job's step (not a training) uses;
    None outside a snakemake job, or inside a SLURM job: there the trainings of a
    group share one, and a step that is a SLURM job of its own would pay a
    server's imports for nothing."""
    owner = os.environ.get(OWNER_ENV, "")
    if not owner.isdigit() or os.environ.get("SLURM_JOB_ID"):
        return None
    return int(owner)


def _in_step_cgroup() -> bool:
    try:
        return "/step_" in Path("/proc/self/cgroup").read_text()
    except OSError:
        return False


# -- the job's side -------------------------------------------------------------


def run(argv: Sequence[str], owner: int, torch: bool = True) -> int | None:
    """Run `python -m nas <argv>` in the owner's server of that kind; None where
    none is reachable."""
    server = server_for(owner, torch)
    if server is None:
        return None
    path, owner_pid = server
    conn = _connect(path)
    if conn is None:
        _start_server(path, owner_pid, torch)
        deadline = time.monotonic() + START_TIMEOUT
        while conn is None and time.monotonic() < deadline:
            time.sleep(0.05)
            conn = _connect(path)
        if conn is None:
            return None
    with conn:
        request = json.dumps({"argv": list(argv), "cwd": os.getcwd(), "env": dict(os.environ)}).encode()
        sys.stdout.flush()
        sys.stderr.flush()
        # The connection stays open both ways: the server reads its end
        # closing as this job having been killed.
        socket.send_fds(conn, [request], [0, 1, 2])
        reply = b""
        while chunk := conn.recv(64):
            reply += chunk
    # An empty reply: the server died before the child ended.
    return int(reply) if reply.strip() else None


def _connect(path: Path) -> socket.socket | None:
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        conn.connect(str(path))
        return conn
    except OSError:
        conn.close()
        return None


def _start_server(path: Path, owner: int | None, torch: bool) -> None:
    argv = [sys.executable, "-m", "nas", "trainer-server", str(path), *(["--owner", str(owner)] if owner else []),
            *([] if torch else ["--light"])]
    log = os.open(f"{path}.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        # posix_spawn, not subprocess: every job imports this module, and with
        # subprocess, tempfile and dataclasses that took about 30 ms of a job,
        # 15 ms without. Only 0, 1 and 2 pass (Python's others close on exec).
        os.posix_spawn(sys.executable, argv, os.environ, file_actions=[
            (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
            (os.POSIX_SPAWN_DUP2, log, 1),
            (os.POSIX_SPAWN_DUP2, log, 2),
        ],
            # Locally the server stays in snakemake's process group, so whatever
            # kills the group (Ctrl-C, a kill of the group) ends it too. In a
            # SLURM job it must outlive the job step that happened to start it.
            setsid=owner is None)
    finally:
        os.close(log)


# -- the server's side ----------------------------------------------------------


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
    """Import once what every training job would: torch and the tasks' libraries
    (the caller has imported the training step itself)."""
    import sklearn.datasets  # noqa: F401  (digits)
    import torch
    import torchvision  # noqa: F401  (the other tasks)

    # The first optimizer imports torch._dynamo, seconds on its own. Nothing
    # here runs a parallel kernel, so no OpenMP pool exists to break in a fork.
    torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)


def _bind(path: Path) -> socket.socket | None:
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_umask = os.umask(0o077)  # the socket is its user's only
    try:
        listener.bind(str(path))
    except OSError:
        if _connect(path) is not None:
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
        request = json.loads(message)
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
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        # The child runs the step itself: handed to a server again, it would fork forever.
        os.environ.pop(OWNER_ENV, None)
        code = entry(request["argv"])
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
