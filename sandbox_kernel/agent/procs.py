"""Find and kill the processes a cell or command started, even those that left its session.

Each task runs with a marker in its environment (``SANDBOX_TASK=<token>``) that children
inherit; killing by process group alone misses double-forked daemons and `setsid` children.
"""

from __future__ import annotations

import os
import signal
import time

TASK_VAR = "SANDBOX_TASK"
_CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _pids() -> list[int]:
    try:
        return [int(n) for n in os.listdir("/proc") if n.isdigit()]
    except OSError:
        return []


def stat_fields(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat after the command name (index 0 is the state)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read().decode("ascii", "replace")
    except OSError:
        return None
    return raw[raw.rfind(")") + 2 :].split()


def cpu_seconds(pid: int) -> float:
    """User plus system CPU of a process and its reaped children."""
    f = stat_fields(pid)
    if not f:
        return 0.0
    return sum(int(x) for x in f[11:15]) / _CLK_TCK


def tagged(token: str, exclude: frozenset[int] = frozenset()) -> list[int]:
    """Pids whose environment carries this task token."""
    needle = f"{TASK_VAR}={token}".encode()
    me = os.getpid()
    found = []
    for pid in _pids():
        if pid in exclude or pid in (me, 1):
            continue
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                env = f.read()
        except OSError:
            continue
        if needle in env.split(b"\0"):
            found.append(pid)
    return found


def kill_tagged(token: str, exclude: frozenset[int] = frozenset(), rounds: int = 5) -> int:
    """SIGKILL every process carrying the token, repeating to catch ones forked meanwhile."""
    killed = 0
    for _ in range(rounds):
        pids = tagged(token, exclude)
        if not pids:
            break
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
                killed += 1
            except OSError:
                pass
        time.sleep(0.01)
    return killed


def kill_group(pgid: int, sig: int = signal.SIGKILL) -> None:
    try:
        os.killpg(pgid, sig)
    except OSError:
        pass


def zombie_children(parent: int) -> list[int]:
    """Pids of exited, unreaped children of `parent` (they still count against pids)."""
    found = []
    for pid in _pids():
        f = stat_fields(pid)
        if f and f[0] == "Z" and f[1] == str(parent):
            found.append(pid)
    return found


def zombies() -> int:
    """Count zombie processes visible in this pid namespace."""
    n = 0
    for pid in _pids():
        f = stat_fields(pid)
        if f and f[0] == "Z":
            n += 1
    return n
