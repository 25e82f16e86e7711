"""A widget cell's reply waits a moment after its comm messages (kernel/comm_bridge.py):
nbclient answers captured Output widget output on the shell socket and misses a reply that
lands while it sends (tests/e2e/test_notebooks.py ran into it about one run in two)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from sandbox_kernel.kernel import comm_bridge
from sandbox_kernel.kernel.comm_bridge import CommBridge, CommLimits
from sandbox_kernel.kernel.policy import OutputPolicy
from sandbox_kernel.kernel.widget_state import StateGuard


class FakeKernel:
    paced_iopub = None
    iopub_socket = object()

    def __init__(self) -> None:
        self.sent: list[str] = []

    def send_response(self, _sock: Any, msg_type: str, _content: Any, **_kw: Any) -> None:
        self.sent.append(msg_type)


def _bridge() -> tuple[CommBridge, FakeKernel]:
    kernel = FakeKernel()
    guard = StateGuard(OutputPolicy(), frozenset())
    return CommBridge(kernel, object(), guard, CommLimits()), kernel  # type: ignore[arg-type]


def _slept(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    slept: list[float] = []

    async def sleep(delay: float) -> None:
        slept.append(delay)

    monkeypatch.setattr(comm_bridge.asyncio, "sleep", sleep)
    return slept


def test_a_cell_that_published_comm_messages_settles_before_its_reply(
        monkeypatch: pytest.MonkeyPatch) -> None:
    bridge, kernel = _bridge()
    before = bridge.published
    bridge.publish("comm_msg", {"comm_id": "a", "data": {}}, [])
    slept = _slept(monkeypatch)
    asyncio.run(bridge.settle(before))
    assert kernel.sent == ["comm_msg"]
    assert slept == [comm_bridge._SETTLE_S]


def test_a_cell_without_comm_messages_replies_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    bridge, _ = _bridge()
    bridge.publish("comm_open", {"comm_id": "a", "data": {}}, [])
    before = bridge.published  # published by an earlier cell
    slept = _slept(monkeypatch)
    asyncio.run(bridge.settle(before))
    assert slept == []
