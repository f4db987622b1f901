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

The server leaves when the snakemake process that owns it is gone and it has
no child running, or after `IDLE_SECONDS` without work. A job whose client is
killed (Snakemake cancelling it) gets its child killed. Where no server can be
reached the job trains in its own process, as without a server.
"""

from __future__ import annotations

import ctypes
import json
import os
import selectors
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Callable, Sequence

# What a forked child runs: `python -m nas`'s main, handed in by its dispatcher.
Entry = Callable[[Sequence[str]], int]

IDLE_SECONDS = 30.0
START_TIMEOUT = 120.0
MAX_REQUEST = 1 << 20


def server_for(owner: int) -> tuple[Path, int | None] | None:
    """The socket of the server a job started by snakemake process `owner`
    uses, and the pid whose end ends that server (None: only idleness does);
    None where a server cannot help.

    Inside a SLURM job every job of the group runs in its own job step, under
    its own snakemake process, so there the server is the SLURM job's. Where
    SLURM confines each step to a cgroup, everything a step started ends with
    it: a server would serve one job, so there is none.
    """
    base = Path(os.environ.get("TMPDIR") or tempfile.gettempdir())
    slurm_job = os.environ.get("SLURM_JOB_ID")
    if slurm_job:
        if _in_step_cgroup():
            return None
        return base / f"snakenas-trainer-{os.getuid()}-slurm{slurm_job}.sock", None
    return base / f"snakenas-trainer-{os.getuid()}-{owner}.sock", owner


def _in_step_cgroup() -> bool:
    try:
        return "/step_" in Path("/proc/self/cgroup").read_text()
    except OSError:
        return False


# -- the job's side -------------------------------------------------------------


def run(argv: Sequence[str], owner: int) -> int | None:
    """Run `python -m nas <argv>` in the owner's server; None where none is reachable."""
    server = server_for(owner)
    if server is None:
        return None
    path, owner_pid = server
    conn = _connect(path)
    if conn is None:
        _start_server(path, owner_pid)
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


def _start_server(path: Path, owner: int | None) -> None:
    log = open(f"{path}.log", "ab")
    subprocess.Popen(
        [sys.executable, "-m", "nas", "trainer-server", str(path), *(["--owner", str(owner)] if owner else [])],
        stdin=subprocess.DEVNULL, stdout=log, stderr=log, close_fds=True,
        # Locally the server stays in snakemake's process group, so whatever
        # kills the group (Ctrl-C, a kill of the group) ends it too. In a
        # SLURM job it must outlive the job step that happened to start it.
        start_new_session=owner is None,
    )
    log.close()


# -- the server's side ----------------------------------------------------------


def serve(path: str | Path, owner: int | None, entry: Entry, idle_seconds: float = IDLE_SECONDS) -> int:
    """Serve training jobs until the owner is gone (or IDLE_SECONDS pass idle);
    each job's child runs `entry(argv)`, the command line's main."""
    _warm_up()

    path = Path(path)
    listener = _bind(path)
    if listener is None:
        return 0  # another server of the same owner won the race
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ)
    children: dict[int, socket.socket] = {}
    last_work = time.monotonic()
    try:
        while True:
            for key, _ in selector.select(timeout=0.05):
                if key.fileobj is listener:
                    conn, _ = listener.accept()
                    pid = _fork_job(conn, listener, children, entry)
                    if pid:
                        children[pid] = conn
                        selector.register(conn, selectors.EVENT_READ, pid)
                else:
                    # The client went away (killed): so does its training.
                    _kill(key.data)
                    selector.unregister(key.fileobj)
            for pid, status in _reaped(children):
                conn = children.pop(pid)
                _reply(conn, os.waitstatus_to_exitcode(status))
                try:
                    selector.unregister(conn)
                except KeyError:
                    pass  # already, when its client went away
                conn.close()
                last_work = time.monotonic()
            owner_gone = owner is not None and not _alive(owner)
            if not children and (owner_gone or time.monotonic() - last_work > idle_seconds):
                return 0
    finally:
        for pid in children:
            _kill(pid)
        selector.close()
        listener.close()
        path.unlink(missing_ok=True)
        log = Path(f"{path}.log")
        if log.exists() and log.stat().st_size == 0:
            log.unlink()


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


def _fork_job(conn: socket.socket, listener: socket.socket, children: dict[int, socket.socket], entry: Entry) -> int:
    try:
        message, fds, _, _ = socket.recv_fds(conn, MAX_REQUEST, 3)
        request = json.loads(message)
    except (OSError, ValueError):
        conn.close()
        return 0
    pid = os.fork()
    if pid:
        for fd in fds:
            os.close(fd)
        return pid
    # The child: become the job, then leave without the server's cleanup.
    code = 1
    try:
        listener.close()
        for other in children.values():
            other.close()
        conn.close()
        _die_with_parent()
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
            os.close(fd)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        code = entry(request["argv"])
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    except BaseException:
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
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


def _reaped(children: dict[int, socket.socket]) -> list[tuple[int, int]]:
    done = []
    for pid in list(children):
        reaped, status = os.waitpid(pid, os.WNOHANG)
        if reaped:
            done.append((pid, status))
    return done


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
