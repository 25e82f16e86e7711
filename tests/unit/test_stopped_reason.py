"""The engine's view of a stopped sandbox, as the sentence a cell shows (health.py)."""

from __future__ import annotations

from sandbox_kernel.sandbox.backend import ContainerState
from sandbox_kernel.sandbox.health import stopped_reason

MB = 2**20


def test_running_container_has_no_reason() -> None:
    assert stopped_reason(ContainerState(True, "running"), 512 * MB) is None


def test_each_way_of_stopping_is_named() -> None:
    assert "removed from outside" in (stopped_reason(ContainerState(False), MB) or "")
    assert "paused" in (stopped_reason(ContainerState(True, "paused"), MB) or "")
    oom = stopped_reason(ContainerState(True, "exited", oom_killed=True, exit_code=137), 256 * MB)
    assert oom is not None and "out of memory (256m)" in oom
    assert stopped_reason(ContainerState(True, "exited", exit_code=3), MB) == (
        "the sandbox container stopped (exited, exit code 3); its state is lost")
