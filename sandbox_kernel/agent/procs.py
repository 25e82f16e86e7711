"""The agent's view of the process table: its descendants, when each started, their CPU.

Cleanup and CPU accounting never rely on anything a process controls (its environment,
its session or group): the agent is a child subreaper, so every process cell code starts
stays its descendant however it detaches, and the kernel records each start time.
"""

from __future__ import annotations

import os
import signal
import time
from typing import NamedTuple

from .loop import sleep

CLK_TCK = os.sysconf("SC_CLK_TCK")


class Proc(NamedTuple):
    """One process as /proc/PID/stat tells it."""

    pid: int
    ppid: int
    state: str
    start_tick: int
    cpu_ticks: int  # utime + stime + cutime + cstime
    threads: int
    rss_pages: int


def read_stat(pid: int) -> Proc | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read()
    except OSError:
        return None
    return parse_stat(pid, raw)


class StatFile:
    """/proc/PID/stat kept open and read with pread: one syscall per reading (hot path)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        try:
            self.fd = os.open(f"/proc/{pid}/stat", os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            self.fd = -1

    def read(self) -> Proc | None:
        if self.fd < 0:
            return None
        try:
            return parse_stat(self.pid, os.pread(self.fd, 1024, 0))
        except OSError:
            return None

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def children_ticks() -> int:
    """CPU of this process's reaped children, in clock ticks (no /proc read)."""
    t = os.times()
    return round((t.children_user + t.children_system) * CLK_TCK)


def parse_stat(pid: int, data: bytes) -> Proc | None:
    raw = data.decode("ascii", "replace")
    fields = raw[raw.rfind(")") + 2 :].split()
    try:
        return Proc(pid=pid, ppid=int(fields[1]), state=fields[0],
                    start_tick=int(fields[19]), cpu_ticks=sum(int(x) for x in fields[11:15]),
                    threads=int(fields[17]), rss_pages=int(fields[21]))
    except (IndexError, ValueError):
        return None


def now_tick() -> int:
    """The current time in the unit of a process's start time (ticks since boot)."""
    return int(time.clock_gettime(time.CLOCK_BOOTTIME) * CLK_TCK)


def table() -> dict[int, Proc]:
    procs: dict[int, Proc] = {}
    try:
        names = os.listdir("/proc")
    except OSError:
        return procs
    for name in names:
        if name.isdigit():
            p = read_stat(int(name))
            if p is not None:
                procs[p.pid] = p
    return procs


def descendants(root: int, procs: dict[int, Proc] | None = None) -> list[Proc]:
    """Every process below `root` (the agent), at any depth."""
    procs = table() if procs is None else procs
    children: dict[int, list[Proc]] = {}
    for p in procs.values():
        children.setdefault(p.ppid, []).append(p)
    out: list[Proc] = []
    stack = [root]
    while stack:
        for child in children.get(stack.pop(), ()):
            out.append(child)
            stack.append(child.pid)
    return out


class Spare(NamedTuple):
    """Processes a cleanup leaves alone: `pids` themselves, `trees` with all below them."""

    pids: frozenset[int] = frozenset()
    trees: frozenset[int] = frozenset()


def started_since(root: int, since_tick: int, spare: Spare) -> list[Proc]:
    """Live descendants of `root` started at or after `since_tick`, except what is spared."""
    procs = table()
    spared = set(spare.pids)
    for t in spare.trees:
        spared.add(t)
        spared.update(p.pid for p in descendants(t, procs))
    return [p for p in descendants(root, procs) if p.start_tick >= since_tick
            and p.pid not in spared and p.state != "Z"]


async def reaped(pids: list[int], within: float = 2.0) -> None:
    """Wait until every pid is reaped, at most `within` seconds: a killed process counts
    against the pids limit until then. The agent's SIGCHLD handler reaps meanwhile."""
    deadline = time.monotonic() + within
    while any(os.path.exists(f"/proc/{pid}") for pid in pids) and time.monotonic() < deadline:
        await sleep(0.005)


def kill_all(pids: list[int]) -> int:
    killed = 0
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
            killed += 1
        except OSError:
            pass
    return killed

