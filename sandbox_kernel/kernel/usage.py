"""The kernel's answer to jupyter-resource-usage's `usage_request`: the sandbox's figures.

The panel reads the kernel's memory and CPU; here those are the sandbox's, as the agent
measures them. Every field the panel reads is always there (it throws on a missing one):
without a sandbox, the memory is that of the next sandbox's limit, none of it used. Only
figures that mean something are sent: the panel shows the ones it lacks (psutil's
active, inactive, wired) as zero, as it does for ipykernel where psutil lacks them.
"""

from __future__ import annotations

from typing import Any

from ..errors import SandboxError
from ..sandbox.session import AsyncSession
from ..sandbox.spec import Limits


def _memory(total: int, used: int, percent: float) -> dict[str, Any]:
    free = max(0, total - used)
    return {"total": total, "used": used, "available": free, "free": free,
            "percent": percent}


async def usage_content(session: AsyncSession | None, pid: int,
                        limits: Limits) -> dict[str, Any]:
    content: dict[str, Any] = {"hostname": "sandbox", "pid": pid, "kernel_cpu": 0.0,
                               "kernel_memory": 0, "cpu_count": limits.cpus,
                               "host_cpu_percent": 0.0,
                               "host_virtual_memory": _memory(limits.memory, 0, 0.0)}
    if session is None:
        content["sandbox"] = {"status": "not running"}
        return content
    try:
        h = await session.health(95.0, False)
    except SandboxError as exc:
        content["sandbox"] = {"status": "unavailable", "reason": str(exc)}
        return content
    limit = h.memory_limit or session.limits.memory
    content.update(
        kernel_cpu=h.cpu_percent, kernel_memory=h.memory_usage, cpu_count=session.limits.cpus,
        host_cpu_percent=h.cpu_percent,
        host_virtual_memory=_memory(limit, h.memory_usage, h.memory_percent),
        sandbox={"pids": h.pids, "pids_limit": h.pids_limit, "uptime_s": h.uptime_s,
                 "status": h.status})
    return content
