"""The host against agents that misbehave: it stays the authority, and no thread dies.

A scripted agent (fake_agent.py) greets properly and then lies: it never ends a cell,
streams forever, or sends frames that break the contract.
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

import pytest

from sandbox_kernel.errors import SessionGone
from sandbox_kernel.sandbox.local_backend import LocalBackend
from sandbox_kernel.sandbox.session import AsyncSession
from sandbox_kernel.sandbox.spec import Limits

from .conftest import in_loop

FAKE = Path(__file__).with_name("fake_agent.py")
QUICK = Limits(timeout=1, cpu_time=1)


def fake(mode: str, monkeypatch: pytest.MonkeyPatch) -> LocalBackend:
    return LocalBackend(agent_argv=[sys.executable, str(FAKE), mode])


@pytest.mark.parametrize("mode", ["silent", "stream"])
def test_a_cell_the_agent_never_ends_is_ended_by_the_host(
        mode: str, monkeypatch: pytest.MonkeyPatch) -> None:
    async def cell(s: AsyncSession) -> tuple[float, int, object, bool]:
        s.grace = 0.5
        t0 = time.monotonic()
        run = await s.run("while True: pass")
        ticks = sum([1 async for _ in run.events()])
        return time.monotonic() - t0, ticks, run.result, s.alive

    elapsed, ticks, result, alive = in_loop(cell, fake(mode, monkeypatch), QUICK)
    assert result is not None
    assert (result.verdict, result.state_lost) == ("timeout", True)  # type: ignore[attr-defined]
    assert result.message == ("cell timed out after 1 s; the sandbox did not stop it and "  # type: ignore[attr-defined]
                              "was replaced")
    assert 1 + 0.5 + 0.5 <= elapsed < 1 + 0.5 + 0.5 + 1.0 + 1.5, elapsed
    assert (ticks > 0) == (mode == "stream")  # output kept flowing: the deadline held anyway
    assert not alive


@pytest.mark.parametrize("mode, reason", [
    ("garbage", "not JSON"), ("deep", "nested too deeply"), ("dup", "duplicate key"),
    ("huge", "exceed"),
])
def test_frames_that_break_the_contract_close_the_channel_with_a_reason(
        mode: str, reason: str, monkeypatch: pytest.MonkeyPatch) -> None:
    async def after_hello(s: AsyncSession) -> str:
        for _ in range(100):
            if not s.alive:
                break
            await asyncio.sleep(0.02)
        with pytest.raises(SessionGone) as info:
            await s.stats()
        return str(info.value)

    text = in_loop(after_hello, fake(mode, monkeypatch))
    assert text.startswith("the sandbox broke protocol (") and reason in text, text
    assert text.endswith(") and was disconnected")


def test_a_reply_the_contract_does_not_allow_closes_the_channel(
        monkeypatch: pytest.MonkeyPatch) -> None:
    async def ask(s: AsyncSession) -> str:
        with pytest.raises(SessionGone) as info:
            await s.stats()
        return str(info.value)

    text = in_loop(ask, fake("badreply", monkeypatch))
    assert "stats reply frame lacks 'memory_usage'" in text


def test_a_silent_agent_fails_requests_in_time_not_forever(
        monkeypatch: pytest.MonkeyPatch) -> None:
    async def ask(s: AsyncSession) -> float:
        t0 = time.monotonic()
        with pytest.raises(SessionGone, match="stopped answering"):
            await s.request("interrupt", target=None, grace=1.0, timeout=0.5)
        return time.monotonic() - t0

    assert in_loop(ask, fake("silent", monkeypatch)) < 3
