"""SIGINT while the kernel handles a request interrupts what runs in the sandbox.

A frontend's interrupt (the signal, or an interrupt_request that the kernel turns into one)
reaches the kernel process; the cell runs elsewhere, so the handler passes it on: to the
running cell, or to the session for a `%%bash` command or a widget's handler. With nothing
running, it is ignored, as ipykernel ignores SIGINT between requests.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from ..errors import SandboxError
from ..sandbox.runs import CellRun
from ..sandbox.session import AsyncSession


class Interrupts:
    """`on_sigint` runs on the kernel's event loop (its SIGINT handler)."""

    def __init__(self, run: Callable[[], CellRun | None],
                 session: Callable[[], AsyncSession | None], handling: Callable[[], bool],
                 grace: float, log: logging.Logger) -> None:
        self.run, self.session, self.handling = run, session, handling
        self.grace = grace
        self.log = log
        self._tasks: set[asyncio.Future[None]] = set()

    def on_sigint(self) -> None:
        run, session = self.run(), self.session()
        if run is not None:
            self._spawn(run.interrupt)
        elif self.handling() and session is not None:
            self._spawn(session.interrupt)

    def _spawn(self, interrupt: Callable[..., Awaitable[Any]]) -> None:
        task = asyncio.ensure_future(self._interrupt(interrupt))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _interrupt(self, interrupt: Callable[..., Awaitable[Any]]) -> None:
        try:
            await interrupt(grace=self.grace)
        except SandboxError as exc:
            self.log.warning("could not interrupt the sandbox: %s", exc)
