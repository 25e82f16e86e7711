"""Starting processes as the worker uid, and the command lines of the two workers."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
from typing import Any

from .privilege import Identity, as_worker

PKG_PARENT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_PIPE_SIZE = 1 << 20


def widen(fd: int) -> None:
    try:
        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, _PIPE_SIZE)
    except OSError:
        pass


def new_token() -> int:
    """A run or request id for the worker channel that no other process can guess: 52 bits
    from the kernel's CSPRNG (what `secrets` draws on; the module brings `random` along)."""
    return (int.from_bytes(os.urandom(7), "big") >> 4) | 1


def spawn(argv: list[str], env: dict[str, str], cwd: str, ident: Identity,
          pass_fds: tuple[int, ...] = (), stdout: Any = subprocess.PIPE) -> subprocess.Popen[bytes]:
    """A process as the worker uid, in its own session; the caller reaps it."""
    creds: dict[str, Any] = {}
    if ident.separated:
        creds = {"user": ident.worker_uid, "group": ident.worker_gid, "extra_groups": []}
    with as_worker(ident):  # the child changes to `cwd` (the worker's) before its setuid
        return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=stdout,
                                stderr=subprocess.PIPE, pass_fds=pass_fds,
                                start_new_session=True, cwd=cwd, env={**env, "PWD": cwd},
                                **creds)


def prefer_oom(pid: int) -> None:
    """The OOM killer takes cell processes before the agent (raising needs no privilege)."""
    try:
        with open(f"/proc/{pid}/oom_score_adj", "w") as f:
            f.write("1000")
    except OSError:
        pass  # a process that is already non-dumpable sets its own (see node_argv)


def python_argv() -> list[str]:
    """-P: the working directory (the notebook's files) is not searched for the worker's own
    imports; the worker puts it back after the standard library (sitepath.py)."""
    return [sys.executable, "-P", "-m", "sandbox_kernel.agent.python_worker"]


def node_argv(memory_limit: int | None) -> list[str]:
    """Node with a V8 heap below the container's memory, so a heap bomb fails cleanly."""
    runner = os.path.join(os.path.dirname(os.path.abspath(__file__)), "node_runner.js")
    argv = ["node"]
    if memory_limit:
        argv.append(f"--max-old-space-size={max(32, int(memory_limit * 0.75) >> 20)}")
    # The score is set before exec: node is execute-only in the image, so the Node worker is
    # not dumpable and could not set it afterwards.
    prefix = ["/bin/sh", "-c", 'echo 1000 > /proc/self/oom_score_adj; exec "$@"', "node"]
    return [*prefix, *argv, runner]
