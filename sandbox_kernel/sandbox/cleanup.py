"""A SandboxManager's cleanup: idle and dead sessions, and orphaned containers of ours.

The manager owns its sessions; the Cleaner decides which of them to drop and runs the
passes, on demand or every `interval` seconds in a daemon thread.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..errors import SandboxError
from .backend import Backend
from .reaper import Reaped, reap
from .sync import Session

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CleanupReport:
    """What one cleanup pass removed."""

    idle: tuple[str, ...]
    dead: tuple[str, ...]
    orphans: tuple[Reaped, ...]


class Cleaner:
    """Cleanup passes for one manager: `sessions()` is a snapshot of what it tracks,
    `drop(session_id, reason)` destroys one, `emit(event, **data)` reports."""

    def __init__(self, backend: Backend, sessions: Callable[[], dict[str, Session]],
                 drop: Callable[[str, str], None], emit: Callable[..., None],
                 idle_timeout: float) -> None:
        self.backend = backend
        self.sessions = sessions
        self.drop = drop
        self.emit = emit
        self.idle_timeout = idle_timeout
        self._stop = threading.Event()

    def run_once(self) -> CleanupReport:
        """One pass: idle sessions, dead sessions, and orphaned containers of ours."""
        now = time.time()
        tracked = self.sessions()
        dead = [sid for sid, s in tracked.items() if not s.alive]
        idle = [sid for sid, s in tracked.items() if s.alive and not s.busy
                and now - s.last_activity_at > self.idle_timeout]
        for sid in dead:
            self.drop(sid, "container died")
        for sid in idle:
            self.drop(sid, "idle")
        keep = frozenset(s.container_id for s in self.sessions().values())
        orphans = tuple(reap(self.backend, keep=keep))
        for r in orphans:
            self.emit("session:cleanup", session_id=None, container_id=r.container_id,
                      reason=r.reason)
        return CleanupReport(tuple(idle), tuple(dead), orphans)

    def start(self, interval: float, reap_now: bool) -> None:
        """Reap leftovers of dead owners now (in the background: a first session must not
        wait for it), and run a pass every `interval` seconds (0: only on demand)."""
        if reap_now:
            self._thread(self._reap_quietly, "sandbox-reap")
        if interval > 0:
            self._thread(lambda: self._loop(interval), "sandbox-cleanup")

    def stop(self) -> None:
        self._stop.set()

    @staticmethod
    def _thread(target: Callable[[], Any], name: str) -> None:
        threading.Thread(target=target, name=name, daemon=True).start()

    def _reap_quietly(self) -> None:
        try:
            for r in reap(self.backend):
                log.info("removed orphaned sandbox %s: %s", r.name, r.reason)
        except SandboxError as exc:
            log.debug("startup reap skipped: %s", exc)

    def _loop(self, interval: float) -> None:
        while not self._stop.wait(interval):
            try:
                self.run_once()
            except SandboxError as exc:
                self.emit("error", error=exc)
