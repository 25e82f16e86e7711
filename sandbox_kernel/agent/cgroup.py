"""Read the container's own cgroup counters (v1 or v2) from inside the container.

`docker stats` omits tmpfs pages and costs a second per sample; these files are exact and
cost microseconds, which lets the agent sample around every cell.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

_ROOT = "/sys/fs/cgroup"
_UNLIMITED = 1 << 62


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
        return int(text)
    except ValueError:
        return None


def _keyed(text: str | None) -> dict[str, int]:
    out: dict[str, int] = {}
    for line in (text or "").splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].lstrip("-").isdigit():
            out[parts[0]] = int(parts[1])
    return out


@dataclass(frozen=True)
class CgroupSample:
    """One reading of the container's counters; None where the kernel does not say."""

    memory_usage: int  # working set: usage minus inactive file cache (tmpfs included)
    memory_limit: int | None
    cpu_usage_ns: int
    cpu_quota: float | None  # CPUs
    pids: int
    pids_limit: int | None
    oom_kills: int
    taken_at: float

    def as_dict(self) -> dict[str, object]:
        return {
            "memory_usage": self.memory_usage,
            "memory_limit": self.memory_limit,
            "cpu_usage_ns": self.cpu_usage_ns,
            "cpu_quota": self.cpu_quota,
            "pids": self.pids,
            "pids_limit": self.pids_limit,
            "oom_kills": self.oom_kills,
            "taken_at": self.taken_at,
        }


class Cgroup:
    """The container's cgroup, detected once."""

    def __init__(self, root: str = _ROOT) -> None:
        self.root = root
        self.v2 = os.path.exists(os.path.join(root, "cgroup.controllers"))

    def _p(self, *parts: str) -> str:
        return os.path.join(self.root, *parts)

    def oom_kills(self) -> int:
        """How many processes the kernel's OOM killer has killed in this container."""
        if self.v2:
            return _keyed(_read(self._p("memory.events"))).get("oom_kill", 0)
        return _keyed(_read(self._p("memory", "memory.oom_control"))).get("oom_kill", 0)

    def memory_usage(self) -> int:
        """Working-set memory alone (two small reads): for a reading at every cell's end."""
        if self.v2:
            usage = _int(_read(self._p("memory.current"))) or 0
            stat = _keyed(_read(self._p("memory.stat")))
        else:
            usage = _int(_read(self._p("memory", "memory.usage_in_bytes"))) or 0
            stat = _keyed(_read(self._p("memory", "memory.stat")))
        return max(0, usage - stat.get("inactive_file", stat.get("total_inactive_file", 0)))

    def sample(self) -> CgroupSample:
        if self.v2:
            usage = _int(_read(self._p("memory.current"))) or 0
            stat = _keyed(_read(self._p("memory.stat")))
            limit = _int(_read(self._p("memory.max")))
            cpu_ns = _keyed(_read(self._p("cpu.stat"))).get("usage_usec", 0) * 1000
            quota = None
            cpu_max = (_read(self._p("cpu.max")) or "max").split()
            if len(cpu_max) == 2 and cpu_max[0] != "max":
                quota = int(cpu_max[0]) / int(cpu_max[1])
            pids = _int(_read(self._p("pids.current"))) or 0
            pids_limit = _int(_read(self._p("pids.max")))
            oom = _keyed(_read(self._p("memory.events"))).get("oom_kill", 0)
        else:
            usage = _int(_read(self._p("memory", "memory.usage_in_bytes"))) or 0
            stat = _keyed(_read(self._p("memory", "memory.stat")))
            limit = _int(_read(self._p("memory", "memory.limit_in_bytes")))
            cpu_ns = _int(_read(self._p("cpuacct", "cpuacct.usage"))) or 0
            q = _int(_read(self._p("cpu", "cpu.cfs_quota_us")))
            period = _int(_read(self._p("cpu", "cpu.cfs_period_us"))) or 100000
            quota = q / period if q is not None and q > 0 else None
            pids = _int(_read(self._p("pids", "pids.current"))) or 0
            pids_limit = _int(_read(self._p("pids", "pids.max")))
            oom = _keyed(_read(self._p("memory", "memory.oom_control"))).get("oom_kill", 0)
        inactive = stat.get("inactive_file", stat.get("total_inactive_file", 0))
        if limit is not None and limit >= _UNLIMITED:
            limit = None
        return CgroupSample(
            memory_usage=max(0, usage - inactive),
            memory_limit=limit,
            cpu_usage_ns=cpu_ns,
            cpu_quota=quota,
            pids=pids,
            pids_limit=pids_limit,
            oom_kills=oom,
            taken_at=time.time(),
        )


if __name__ == "__main__":
    import json
    import sys

    json.dump(Cgroup().sample().as_dict(), sys.stdout)
