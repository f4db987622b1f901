"""The job's side of the shared servers (nas/shared_trainer.py): hand a step to
the server of the job's snakemake process and wait for its exit status.

Every job of a run starts a Python process only to do this, so this module
imports nothing beyond what the interpreter has loaded at start, `_socket`
and `array`: the command line's parser, `socket`, `json` and `pathlib` cost a
job about 40 ms, which the job's step, forked from the server, has already
imported there. `served` is the first thing the command line does; a step it
does not hand on goes through the command line's parser as before.
"""

from __future__ import annotations

import _socket
import array
import os
import sys
import time

# Set for a job (to its snakemake's pid) by the Snakefile: the job's steps use that one's servers.
OWNER_ENV = "SNAKENAS_SERVER_OWNER"
START_TIMEOUT = 120.0
# The steps of a snakemake job that fork from its snakemake's server -> whether
# they need torch (and so the server that imported it). Trainings ask for
# theirs with --shared-trainer.
SERVED_STEPS = {"propose": False, "aggregate": False, "report": False, "meta task": True}
TRAIN_OPTION = "--shared-trainer"


def served(argv: list[str]) -> int | None:
    """The exit status of the step `argv` (a command line without the program)
    as the job's server ran it; None: this process runs it. A training names its
    server's owner (`--shared-trainer PID`), a light step finds it in OWNER_ENV."""
    if not argv or "-h" in argv or "--help" in argv:
        return None
    if argv[0] == "train":
        owner, forwarded = _train_owner(argv)
        if owner is None:
            return None
        code = run(forwarded, owner)
        if code is None:
            print("no shared trainer here: training in this process", file=sys.stderr)
        return code
    step = " ".join(argv[:2]) if argv[0] == "meta" else argv[0]
    if step not in SERVED_STEPS:
        return None
    owner = step_owner()
    return None if owner is None else run(argv, owner, torch=SERVED_STEPS[step])


def _train_owner(argv: list[str]) -> tuple[int | None, list[str]]:
    """The owner `train ... --shared-trainer PID` names (None: none, or not a pid:
    the parser says what is wrong), and the command line without the option."""
    for i, arg in enumerate(argv):
        if arg == TRAIN_OPTION and i + 1 < len(argv):
            value, rest = argv[i + 1], argv[:i] + argv[i + 2:]
        elif arg.startswith(f"{TRAIN_OPTION}="):
            value, rest = arg.partition("=")[2], argv[:i] + argv[i + 1:]
        else:
            continue
        return (int(value), rest) if value.isdigit() else (None, argv)
    return None, argv


def server_for(owner: int, torch: bool = True) -> tuple[str, int | None] | None:
    """The socket of the server (of the torch or the light kind) a job started
    by snakemake process `owner` uses, and the pid whose end ends that server
    (None: only idleness does); None where a server cannot help.

    Inside a SLURM job every job of the group runs in its own job step, under
    its own snakemake process, so there the server is the SLURM job's. Where
    SLURM confines each step to a cgroup, everything a step started ends with
    it: a server would serve one job, so there is none.
    """
    base = os.environ.get("TMPDIR") or "/tmp"
    kind = "trainer" if torch else "steps"
    slurm_job = os.environ.get("SLURM_JOB_ID")
    if slurm_job:
        if _in_step_cgroup():
            return None
        return os.path.join(base, f"snakenas-{kind}-{os.getuid()}-slurm{slurm_job}.sock"), None
    return os.path.join(base, f"snakenas-{kind}-{os.getuid()}-{owner}.sock"), owner


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
        with open("/proc/self/cgroup", encoding="utf-8") as f:
            return "/step_" in f.read()
    except OSError:
        return False


def run(argv: list[str], owner: int, torch: bool = True) -> int | None:
    """Run `python -m nas <argv>` in the owner's server of that kind; None where
    none is reachable."""
    server = server_for(owner, torch)
    if server is None:
        return None
    path, owner_pid = server
    conn = connect(path)
    if conn is None:
        _start_server(path, owner_pid, torch)
        deadline = time.monotonic() + START_TIMEOUT
        while conn is None and time.monotonic() < deadline:
            time.sleep(0.05)
            conn = connect(path)
        if conn is None:
            return None
    try:
        request = encode_request(list(argv), os.getcwd(), dict(os.environ))
        sys.stdout.flush()
        sys.stderr.flush()
        # The connection stays open both ways: the server reads its end
        # closing as this job having been killed. The job's stdin, stdout and
        # stderr go along, as the child's.
        conn.sendmsg([request], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, array.array("i", [0, 1, 2]))])
        reply = b""
        while chunk := conn.recv(64):
            reply += chunk
    finally:
        conn.close()
    # An empty reply: the server died before the child ended.
    return int(reply) if reply.strip() else None


def encode_request(argv: list[str], cwd: str, env: dict[str, str]) -> bytes:
    """A job's command line, working folder and environment as its server reads
    them (`decode_request`): NUL-separated, as no argument, path or variable
    can hold a NUL (json's import would be 5 ms of every job)."""
    fields = [str(len(argv)), *argv, cwd, *(f"{k}={v}" for k, v in env.items())]
    return "\0".join(fields).encode("utf-8", "surrogateescape")


def decode_request(message: bytes) -> tuple[list[str], str, dict[str, str]]:
    """(argv, cwd, env) of `encode_request`; ValueError for anything else."""
    fields = message.decode("utf-8", "surrogateescape").split("\0")
    count = int(fields[0])
    if len(fields) < count + 2:
        raise ValueError("a request cut short")
    env = dict(field.split("=", 1) for field in fields[count + 2:] if "=" in field)
    return fields[1:count + 1], fields[count + 1], env


def connect(path: str) -> _socket.socket | None:
    """A connection to the server listening at `path`, or None."""
    conn = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        conn.connect(path)
        return conn
    except OSError:
        conn.close()
        return None


def _start_server(path: str, owner: int | None, torch: bool) -> None:
    argv = [sys.executable, "-m", "nas", "trainer-server", path, *(["--owner", str(owner)] if owner else []),
            *([] if torch else ["--light"])]
    log = os.open(f"{path}.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        # posix_spawn, not subprocess (whose import alone is tens of ms). Only
        # 0, 1 and 2 pass (Python's others close on exec).
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
