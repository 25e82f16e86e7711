"""Reclaiming an idle kernel's sandbox (`Sandbox.idle_timeout`): the container goes, the
kernel stays, and the next cell starts a fresh sandbox after a notice."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from .launcher import Launcher


class Periodic:
    """Calls `fn` every `seconds` on the running event loop until stopped."""

    def __init__(self, fn: Callable[[], None], seconds: float) -> None:
        self.fn, self.seconds = fn, seconds
        self._handle: asyncio.TimerHandle | None = None

    def start(self) -> None:
        self._handle = asyncio.get_running_loop().call_later(self.seconds, self._tick)

    def _tick(self) -> None:
        self.start()
        self.fn()

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None


class IdleReclaim:
    """Checks a few times per timeout whether the kernel and its sandbox have been idle
    that long; `busy` says whether the kernel is handling a cell, `notify` gets the notice
    the next cell shows (only once a cell has run: a fresh sandbox has no state to lose)."""

    def __init__(self, launcher: Launcher, timeout: float, busy: Callable[[], bool],
                 notify: Callable[[str], None], log: logging.Logger) -> None:
        self.launcher = launcher
        self.timeout = timeout
        self.busy = busy
        self.notify = notify
        self.log = log
        self.last_activity = time.monotonic()
        self.ran_cells = False
        self._timer: Periodic | None = None
        self._tasks: set[asyncio.Future[Any]] = set()

    def start(self) -> None:
        if self.timeout > 0:
            self._timer = Periodic(self.check, max(0.25, min(60.0, self.timeout / 4)))
            self._timer.start()

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.stop()

    def touch(self) -> None:
        """The kernel just finished something: idle time counts from now."""
        self.last_activity = time.monotonic()

    def check(self) -> None:
        idle = time.monotonic() - self.last_activity
        session = self.launcher.current()
        if self.busy() or session is None or session.busy or idle < self.timeout:
            return
        minutes = idle / 60
        span = f"{minutes:.0f} min" if minutes >= 1 else f"{idle:.0f} s"
        if self.ran_cells:
            self.notify(f"[sandbox] the sandbox was reclaimed after {span} idle; state was reset")
        self.log.info("reclaiming idle sandbox %s after %.0f s", session.session_id, idle)
        self.launcher.forget()
        task = asyncio.ensure_future(self.launcher.discard(session))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
