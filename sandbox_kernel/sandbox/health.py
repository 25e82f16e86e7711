"""A sandbox's health: a report from two readings of the agent's counters, and the
engine's view of why a sandbox stopped."""

from __future__ import annotations

from typing import Any

from .backend import ContainerState
from .spec import Health
from .units import format_size


def health_of(prev: dict[str, Any], cur: dict[str, Any], threshold: float) -> Health:
    """A Health from two stats readings (CPU is the use between them)."""
    wall = cur["taken_at"] - prev["taken_at"]
    cpu_ns = cur["cpu_usage_ns"] - prev["cpu_usage_ns"]
    cpu_pct = max(0.0, cpu_ns / (wall * 1e9) * 100) if wall > 0 else 0.0
    used, limit = cur["memory_usage"], cur["memory_limit"]
    mem_pct = 100.0 * used / limit if limit else 0.0
    pids, pids_limit = cur["pids"], cur["pids_limit"]
    reason = ""
    if mem_pct >= threshold:
        reason = f"Memory usage exceeds threshold: {threshold:g}%"
    elif pids_limit and pids >= pids_limit:
        reason = f"Process limit reached: {pids}/{pids_limit}"
    return Health(memory_usage=used, memory_limit=limit, memory_percent=round(mem_pct, 1),
                  cpu_percent=round(cpu_pct, 1), pids=pids, pids_limit=pids_limit,
                  uptime_s=float(cur["uptime"]), oom_kills=cur["oom_kills"],
                  status="unhealthy" if reason else "healthy", reason=reason)


def stopped_reason(st: ContainerState, memory: int) -> str | None:
    """Why the engine says the container no longer runs cells; None while it runs."""
    if not st.exists:
        return "the sandbox container was removed from outside; its state is lost"
    if st.status == "paused":
        return "the sandbox container was paused from outside"
    if st.oom_killed:
        return (f"the sandbox ran out of memory ({format_size(memory)}) and its container "
                "stopped; state is lost")
    if st.status != "running":
        return (f"the sandbox container stopped ({st.status}, exit code {st.exit_code}); "
                "its state is lost")
    return None
