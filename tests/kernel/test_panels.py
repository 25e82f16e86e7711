"""JupyterLab's kernel usage panel (jupyter-resource-usage) and the idle-reclaim notice,
through jupyter_client."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from sandbox_kernel.sandbox.units import MiB

from .conftest import KernelHandle, docker, wait_until

pytestmark = pytest.mark.docker

Start = Callable[..., KernelHandle]
#: Every field the panel's React view reads (packages/labextension/src/widget.tsx).
PANEL_FIELDS = ("hostname", "pid", "kernel_cpu", "kernel_memory", "host_cpu_percent",
                "cpu_count", "host_virtual_memory")
MEMORY_FIELDS = ("total", "used", "available", "free", "percent")


def check_complete(content: dict[str, Any]) -> dict[str, Any]:
    assert all(f in content for f in PANEL_FIELDS), content
    assert content["hostname"], content  # the panel shows "not available" without one
    memory = content["host_virtual_memory"]
    assert all(f in memory for f in MEMORY_FIELDS), memory
    assert memory["total"] == 512 * MiB  # the sandbox's limit, never a zero
    assert memory["used"] + memory["free"] == memory["total"]
    assert memory["available"] == memory["free"]
    return memory


def test_usage_reply_is_complete_before_and_after_a_sandbox_runs(start_kernel: Start) -> None:
    k = start_kernel()
    before = k.usage()  # no cell yet: no sandbox is connected
    assert before["sandbox"]["status"] == "not running"
    memory = check_complete(before)
    assert memory["used"] == 0 and memory["percent"] == 0
    assert before["cpu_count"] == 1
    k.ok("held = b'\\x01' * (100 * 2**20)")
    after = k.usage()
    memory = check_complete(after)
    assert memory["used"] > 100 * MiB and 0 < memory["percent"] < 100
    assert after["kernel_memory"] == memory["used"]


def test_a_kernel_that_ran_no_cell_is_not_told_its_state_was_reset(
        start_kernel: Start) -> None:
    k = start_kernel(extra_arguments=["--Sandbox.idle_timeout=2"])
    # What a frontend does on its own: silent code, a completion. Not the user's state.
    assert k.execute("_frontend_probe = 1", silent=True).status == "ok"
    k.request("complete", "pri", 3)
    old = k.container().id
    assert wait_until(lambda: docker("inspect", old, check=False).returncode != 0, 20), \
        "idle sandbox was not reclaimed"
    r = k.ok("print('first')")
    assert r.text("stdout") == "first\n"
    assert "state was reset" not in r.text("stderr") and "reclaimed" not in r.text("stderr")
