"""Starting the kernel's sandbox in the background, as early as the kernel process allows.

The app creates the Launcher as soon as its configuration is loaded, so the container
starts while ipykernel is still setting up its sockets; the kernel then only waits for
whatever is left when the first cell arrives.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import threading

from ..errors import SandboxError
from ..sandbox.manager import SandboxManager
from ..sandbox.session import Session
from .config import Sandbox


class Launcher:
    """Owns the kernel's SandboxManager and the future of its current session."""

    def __init__(self, settings: Sandbox) -> None:
        self.settings = settings
        self.limits = settings.limits()
        self.ceilings = settings.ceilings()
        self.manager: SandboxManager | None = None
        self.future: concurrent.futures.Future[Session] | None = None
        self._lock = threading.Lock()
        self._executor = concurrent.futures.ThreadPoolExecutor(1, "sandbox-start")

    def _get_manager(self) -> SandboxManager:
        with self._lock:
            if self.manager is None:
                self.manager = SandboxManager(
                    image=self.settings.image, limits=self.limits, ceilings=self.ceilings,
                    pool_size=self.settings.pool_size, cleanup_interval=0,
                    env={**self.settings.env,
                         "SANDBOX_AGENT_PRESTART": self.settings.language})
            return self.manager

    def _open(self) -> Session:
        return self._get_manager().open_session(self.limits)

    def start(self) -> concurrent.futures.Future[Session]:
        """Begin creating a sandbox (unless one is already on its way) and return its future."""
        if self.future is None:
            self.future = self._executor.submit(self._open)
        return self.future

    def forget(self) -> None:
        """The current session is gone or failed; the next start() makes a new one."""
        self.future = None

    def current(self) -> Session | None:
        f = self.future
        if f is None or not f.done() or f.exception() is not None:
            return None
        s = f.result()
        return s if s.alive else None

    def discard(self, session: Session) -> None:
        if self.manager is not None:
            with contextlib.suppress(SandboxError, KeyError):
                self.manager.destroy_session(session.session_id, reason="replaced")
        with contextlib.suppress(SandboxError):
            session.close()

    def close(self) -> None:
        """Remove every container this kernel made (its session and its pool)."""
        f = self.future
        if f is not None and not f.done():
            with contextlib.suppress(Exception):
                f.result(timeout=30)
        with self._lock:
            manager, self.manager = self.manager, None
        if manager is not None:
            manager.close()
        elif f is not None and f.done() and f.exception() is None:
            with contextlib.suppress(SandboxError):
                f.result().close()
