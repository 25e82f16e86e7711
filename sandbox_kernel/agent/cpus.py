"""The CPU count cell code sees: the sandbox's CPU limit, not the host's cores.

`os.cpu_count()` and Node's `os.cpus()` report the host's cores, so pools sized by them
start more threads than the limits allow. The image runs this module at every Python
start (a .pth file, as `sandbox_cpus`), the agent uses it to size the thread-pool variables
of what it starts, and the Node worker asks the same files (docs/architecture.md, "CPU
count"). Standard library only, and cheap: it runs before any cell.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable

#: Where the runtime shows no cgroup (gVisor) the agent passes the limit in this variable.
LIMIT_ENV = "SANDBOX_CPU_LIMIT"
#: Thread-pool sizes of OpenMP, OpenBLAS, MKL, numexpr and Accelerate, set to the count.
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
               "NUMEXPR_NUM_THREADS", "VECLIB_MAXIMUM_THREADS")
CGROUP = "/sys/fs/cgroup"


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="ascii") as f:
            return f.read().strip()
    except (OSError, ValueError):
        return None


def quota(root: str = CGROUP) -> float | None:
    """The CPU limit in CPUs (1.5 for a 150% quota), or None if there is none."""
    v2 = _read(f"{root}/cpu.max")
    if v2 is not None:
        parts = v2.split()
        if len(parts) == 2 and parts[0] != "max" and int(parts[1]) > 0:
            return int(parts[0]) / int(parts[1])
        return None
    q, period = (_read(f"{root}/cpu/cpu.cfs_{name}_us") for name in ("quota", "period"))
    if q is not None and period is not None:
        return int(q) / int(period) if int(q) > 0 and int(period) > 0 else None
    told = os.environ.get(LIMIT_ENV)
    try:
        return float(told) if told else None
    except ValueError:
        return None


def count(host: Callable[[], int | None] = os.cpu_count) -> int:
    """The CPUs a process here can use: the quota rounded up, at most the usable cores."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = host() or 1
    limit = quota()
    return max(1, min(cores, math.ceil(limit))) if limit else max(1, cores)


def thread_env(cpus: float | None) -> dict[str, str]:
    """The thread-pool variables for a process started under a limit of `cpus`."""
    n = str(max(1, math.ceil(cpus))) if cpus else str(count())
    return dict.fromkeys(THREAD_VARS, n)


def install() -> None:
    """Make `os.cpu_count()` (and so multiprocessing's and concurrent.futures') the limit."""
    host = os.cpu_count
    if getattr(host, "sandbox_limit", False):
        return

    def cpu_count() -> int:
        return count(host)

    cpu_count.__doc__ = host.__doc__
    cpu_count.sandbox_limit = True  # type: ignore[attr-defined]
    os.cpu_count = cpu_count
