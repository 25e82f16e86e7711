"""SIGINT while the kernel handles a request interrupts what runs in the sandbox.

A frontend's interrupt (the signal, or an interrupt_request that ipykernel turns into one)
reaches the kernel process; the cell runs elsewhere, so the handler passes it on: to the
running cell, or to the session for a `%%bash` command or a widget's handler.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable
from typing import Any

from ..errors import SandboxError
from ..sandbox.runs import CellRun
from ..sandbox.session import AsyncSession


class Interrupts:
    """Installed around each shell request (`install`/`restore`), from the main thread."""

    def __init__(self, loop: Callable[[], asyncio.AbstractEventLoop],
                 run: Callable[[], CellRun | None], session: Callable[[], AsyncSession | None],
                 handling: Callable[[], bool], grace: float, log: logging.Logger) -> None:
        self.loop, self.run, self.session, self.handling = loop, run, session, handling
        self.grace = grace
        self.log = log
        self._saved: Any = None
        self._tasks: set[asyncio.Future[None]] = set()

    def install(self) -> None:
        self._saved = signal.signal(signal.SIGINT, self.on_sigint)

    def restore(self) -> None:
        signal.signal(signal.SIGINT, self._saved)

    def on_sigint(self, signum: int, frame: Any) -> None:
        run, session = self.run(), self.session()
        if run is not None:
            self.loop().call_soon_threadsafe(self._spawn, run.interrupt)
        elif self.handling() and session is not None:
            self.loop().call_soon_threadsafe(self._spawn, session.interrupt)

    def _spawn(self, interrupt: Callable[..., Awaitable[Any]]) -> None:
        task = asyncio.ensure_future(self._interrupt(interrupt))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _interrupt(self, interrupt: Callable[..., Awaitable[Any]]) -> None:
        try:
            await interrupt(grace=self.grace)
        except SandboxError as exc:
            self.log.warning("could not interrupt the sandbox: %s", exc)
