"""What the sandbox uses, measured by the agent where cell code cannot forge it.

The container's own cgroup (v2 or v1) when the agent can show it is its own; otherwise the
agent's process tree from /proc, with no limits claimed. A cgroup that is the host's root
is never reported as the sandbox's (docs/architecture.md, "Measurements").
"""

from __future__ import annotations

import os
import time
from typing import Any, NamedTuple

from . import procs

_ROOT = "/sys/fs/cgroup"
_UNLIMITED = 1 << 62
_PAGE = os.sysconf("SC_PAGE_SIZE")


def _read(path: str) -> str | None:
    try:
        with open(path, "rb") as f:
            return f.read(65536).decode("ascii", "replace").strip()
    except OSError:
        return None


def _int(text: str | None) -> int | None:
    if text is None or text == "max":
        return None
    try:
        value = int(text)
    except ValueError:
        return None
    return None if value >= _UNLIMITED else value


def _keyed(text: str | None) -> dict[str, int]:
    out: dict[str, int] = {}
    for line in (text or "").splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].lstrip("-").isdigit():
            out[parts[0]] = int(parts[1])
    return out


class Sample(NamedTuple):
    """One reading; None where the source does not say."""

    memory_usage: int  # working set: usage minus inactive file cache (tmpfs included)
    memory_limit: int | None
    memory_peak: int | None
    cpu_usage_ns: int
    cpu_quota: float | None
    pids: int
    pids_limit: int | None
    oom_kills: int
    taken_at: float
    measure: str

    def as_dict(self) -> dict[str, object]:
        return self._asdict()


def detect(root: str = _ROOT) -> tuple[str, str]:
    """(kind, directory): cgroup2 or cgroup1 if the agent's own cgroup is there, else proc."""
    forced = os.environ.get("SANDBOX_AGENT_MEASURE")
    if forced in ("proc", "none"):
        return forced, ""
    if os.path.exists(os.path.join(root, "cgroup.controllers")):
        # The root cgroup has no memory.max: seeing one means a cgroup of our own.
        return ("cgroup2", root) if os.path.exists(os.path.join(root, "memory.max")) else \
            ("proc", "")
    memory = os.path.join(root, "memory")
    if _int(_read(os.path.join(memory, "memory.limit_in_bytes"))) is not None:
        return "cgroup1", root  # a limit is set: not the unlimited root of the host
    return ("proc", "")


class Meter:
    """Samples the sandbox's counters with one method whatever the source."""

    def __init__(self, agent_pid: int) -> None:
        self.kind, self.dir = detect()
        self.agent_pid = agent_pid
        self._fds: dict[str, int] = {}

    def _p(self, *parts: str) -> str:
        return os.path.join(self.dir, *parts)

    def _hot(self, path: str) -> str | None:
        """A file read around every cell: kept open, read with one pread."""
        fd = self._fds.get(path)
        if fd is None:
            try:
                fd = self._fds[path] = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            except OSError:
                return None
        try:
            return os.pread(fd, 65536, 0).decode("ascii", "replace").strip()
        except OSError:
            return None

    def oom_kills(self) -> int:
        if self.kind == "cgroup2":
            return _keyed(self._hot(self._p("memory.events"))).get("oom_kill", 0)
        if self.kind == "cgroup1":
            return _keyed(self._hot(self._p("memory", "memory.oom_control"))).get("oom_kill", 0)
        return 0

    def memory_usage(self) -> int:
        if self.kind == "cgroup2":
            usage = _int(self._hot(self._p("memory.current"))) or 0
            stat = _keyed(self._hot(self._p("memory.stat")))
            return max(0, usage - stat.get("inactive_file", 0))
        if self.kind == "cgroup1":
            usage = _int(self._hot(self._p("memory", "memory.usage_in_bytes"))) or 0
            stat = _keyed(self._hot(self._p("memory", "memory.stat")))
            return max(0, usage - stat.get("total_inactive_file", 0))
        if self.kind == "proc":
            tree = procs.descendants(self.agent_pid)
            own = procs.read_stat(self.agent_pid)
            return sum(p.rss_pages for p in tree) * _PAGE + (own.rss_pages * _PAGE if own else 0)
        return 0

    def sample(self) -> Sample:
        if self.kind == "cgroup2":
            return self._v2()
        if self.kind == "cgroup1":
            return self._v1()
        return self._proc()

    def _v2(self) -> Sample:
        cpu_max = (_read(self._p("cpu.max")) or "max").split()
        quota = int(cpu_max[0]) / int(cpu_max[1]) if len(cpu_max) == 2 and \
            cpu_max[0] != "max" else None
        return Sample(
            memory_usage=self.memory_usage(),
            memory_limit=_int(_read(self._p("memory.max"))),
            memory_peak=_int(_read(self._p("memory.peak"))),
            cpu_usage_ns=_keyed(_read(self._p("cpu.stat"))).get("usage_usec", 0) * 1000,
            cpu_quota=quota, pids=_int(_read(self._p("pids.current"))) or 0,
            pids_limit=_int(_read(self._p("pids.max"))), oom_kills=self.oom_kills(),
            taken_at=time.time(), measure=self.kind)

    def _v1(self) -> Sample:
        q = _int(_read(self._p("cpu", "cpu.cfs_quota_us")))
        period = _int(_read(self._p("cpu", "cpu.cfs_period_us"))) or 100000
        return Sample(
            memory_usage=self.memory_usage(),
            memory_limit=_int(_read(self._p("memory", "memory.limit_in_bytes"))),
            memory_peak=_int(_read(self._p("memory", "memory.max_usage_in_bytes"))),
            cpu_usage_ns=_int(_read(self._p("cpuacct", "cpuacct.usage"))) or 0,
            cpu_quota=q / period if q is not None and q > 0 else None,
            pids=_int(_read(self._p("pids", "pids.current"))) or 0,
            pids_limit=_int(_read(self._p("pids", "pids.max"))), oom_kills=self.oom_kills(),
            taken_at=time.time(), measure=self.kind)

    def _proc(self) -> Sample:
        tree = procs.descendants(self.agent_pid) if self.kind == "proc" else []
        own = procs.read_stat(self.agent_pid)
        ticks = sum(p.cpu_ticks for p in tree) + (own.cpu_ticks if own else 0)
        told = host_limits()
        return Sample(
            memory_usage=self.memory_usage(), memory_limit=told.get("memory"),
            memory_peak=None, cpu_usage_ns=ticks * 10**9 // procs.CLK_TCK,
            cpu_quota=told.get("cpus"),
            pids=sum(p.threads for p in tree) + (own.threads if own else 0),
            pids_limit=told.get("pids"), oom_kills=0, taken_at=time.time(), measure=self.kind)


def host_limits() -> dict[str, Any]:
    """The limits the host set, where no cgroup shows them (SANDBOX_AGENT_LIMITS)."""
    out: dict[str, Any] = {}
    for item in os.environ.get("SANDBOX_AGENT_LIMITS", "").split(","):
        key, _, value = item.partition("=")
        try:
            out[key] = float(value) if key == "cpus" else int(value)
        except ValueError:
            continue
    return out


if __name__ == "__main__":
    import json
    import sys

    json.dump(Meter(os.getpid()).sample().as_dict(), sys.stdout)
