"""The fast tier: the real agent, contract, channel, session and cell path, no Docker.

Sandboxes here are agent subprocesses (sandbox_kernel.sandbox.local_backend): no
isolation and no cgroups, so nothing here proves a limit the container enforces; that is
the Docker suites' job. After every module no agent process of ours may be left.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, TypeVar

import psutil
import pytest

from sandbox_kernel.sandbox.local_backend import LocalBackend
from sandbox_kernel.sandbox.manager import SandboxManager
from sandbox_kernel.sandbox.session import AsyncSession
from sandbox_kernel.sandbox.spec import CellResult, Limits

T = TypeVar("T")
FAST = Limits(timeout=20, cpu_time=20)


def _agents() -> list[psutil.Process]:
    found = []
    for p in psutil.Process().children(recursive=True):
        try:
            if "sandbox_kernel.agent" in " ".join(p.cmdline()) and \
                    p.status() != psutil.STATUS_ZOMBIE:
                found.append(p)
        except psutil.NoSuchProcess:
            continue
    return found


@pytest.fixture(scope="module", autouse=True)
def _no_agents_left() -> Iterator[None]:
    yield
    deadline = time.monotonic() + 5
    while _agents() and time.monotonic() < deadline:
        time.sleep(0.05)
    left = _agents()
    for p in left:
        p.kill()
    assert not left, f"agent processes left running: {[p.pid for p in left]}"


@pytest.fixture(scope="module")
def manager() -> Iterator[SandboxManager]:
    m = SandboxManager(backend=LocalBackend(), limits=FAST, reap_on_start=False,
                       cleanup_interval=0)
    try:
        yield m
    finally:
        m.close()


@pytest.fixture(scope="module")
def shared(manager: SandboxManager) -> Any:
    """One session for a module's tests that leave it as they found it."""
    return manager.open_session()


@pytest.fixture
def fresh(manager: SandboxManager) -> Iterator[Any]:
    s = manager.open_session()
    try:
        yield s
    finally:
        manager.destroy_session(s.session_id)


def run(session: Any, code: str, **kwargs: Any) -> tuple[CellResult, list[dict[str, Any]]]:
    events: list[dict[str, Any]] = []
    return session.run(code, events.append, **kwargs).wait(60), events


def text(events: list[dict[str, Any]], name: str = "stdout") -> str:
    return "".join(e["text"] for e in events if e["type"] == "stream" and e["name"] == name)


def in_loop(fn: Callable[[AsyncSession], Coroutine[Any, Any, T]],
            backend: LocalBackend | None = None, limits: Limits = FAST) -> T:
    """Run `fn(session)` with an AsyncSession of its own on a fresh event loop."""

    async def main() -> T:
        m = SandboxManager(backend=backend or LocalBackend(), limits=limits,
                           reap_on_start=False, cleanup_interval=0)
        prepared = m.prepare()
        session = await m.connect(prepared)
        try:
            return await fn(session)
        finally:
            await session.close()
            m.close()

    return asyncio.run(main())
