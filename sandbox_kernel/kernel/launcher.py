"""The kernel's sandbox: prepared as early as the kernel process allows, used on its loop.

The app starts preparing a container (a pool claim, or create and start) in a thread as
soon as its configuration is loaded; the kernel's event loop then only greets the agent
when the first cell or request needs the sandbox.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
from typing import Any

from ..errors import ConfigError, SandboxError
from ..sandbox.engines import make_backend
from ..sandbox.manager import Prepared, SandboxManager
from ..sandbox.session import AsyncSession
from .config import Sandbox
from .config_check import CheckedSettings, check_settings

#: What ipykernel puts in its environment for the programs a cell starts: colour on (there
#: is no terminal to ask) and pagers off. `Sandbox.env` and `%sandbox env` override them.
NOTEBOOK_ENV = {"TERM": "xterm-color", "CLICOLOR": "1", "FORCE_COLOR": "1",
                "CLICOLOR_FORCE": "1", "PAGER": "cat", "GIT_PAGER": "cat"}


def kernel_env(env: dict[str, str], language: str) -> dict[str, str]:
    """A kernel's sandbox environment (`sandbox-kernel pool` makes the same, to match)."""
    return {**NOTEBOOK_ENV, **env, "SANDBOX_AGENT_PRESTART": language}


class Launcher:
    """Owns the kernel's SandboxManager and its current AsyncSession.

    With fatal configuration problems (config_check.py) no sandbox is ever started: every
    request for one raises them, so each cell reports them and the kernel stays up.
    """

    def __init__(self, settings: Sandbox, checked: CheckedSettings | None = None) -> None:
        self.settings = settings
        self.problems = checked.fatal if checked is not None else ()
        self.config_warnings = checked.warnings if checked is not None else ()
        self.limits = settings.limits()
        self.ceilings = settings.ceilings()
        self.manager: SandboxManager | None = None
        self._prepared: concurrent.futures.Future[Prepared] | None = None
        self._connecting: asyncio.Future[AsyncSession] | None = None
        self._session: AsyncSession | None = None
        self._lock = threading.Lock()
        self._executor = concurrent.futures.ThreadPoolExecutor(1, "sandbox-start")

    @classmethod
    def from_config(cls, config: Any, **kwargs: Any) -> Launcher:
        """A launcher for these settings, checked (bad values reported, never raised)."""
        checked = check_settings(config, **kwargs)
        return cls(checked.settings, checked)

    def _get_manager(self) -> SandboxManager:
        with self._lock:
            if self.manager is None:
                backend = make_backend(
                    allow_unenforced_limits=self.settings.allow_unenforced_limits,
                    direct_link=self.settings.direct_link)
                self.manager = SandboxManager(
                    image=self.settings.image, limits=self.limits, ceilings=self.ceilings,
                    pool_size=self.settings.pool_size, cleanup_interval=0, backend=backend,
                    runtime=self.settings.runtime or None,
                    env=kernel_env(self.settings.env, self.settings.language))
            return self.manager

    def prime(self) -> None:
        """Make the manager (importing the engine client) in this thread, contacting no
        engine: early.py does, where a thread would get the GIL only between imports."""
        if not self.problems:
            self._get_manager()

    def start(self) -> None:
        """Begin preparing a container (from any thread) unless one is on its way."""
        with self._lock:
            if self._prepared is None and not self.problems:
                self._prepared = self._executor.submit(
                    lambda: self._get_manager().prepare(self.limits))

    async def session(self) -> AsyncSession:
        """The live session, connecting (or reconnecting) on this event loop as needed."""
        if self._session is not None and self._session.alive:
            return self._session
        if self._connecting is None or self._connecting.done():
            self._connecting = asyncio.ensure_future(self._connect())
        return await asyncio.shield(self._connecting)

    async def _connect(self) -> AsyncSession:
        if self.problems:
            raise ConfigError("\n".join(self.problems))
        self.start()
        assert self._prepared is not None
        try:
            prepared = await asyncio.wrap_future(self._prepared)
        finally:
            self._prepared = None  # used, or failed: the next start prepares anew
        manager = self._get_manager()
        core = await manager.connect(prepared)
        core.grace = self.settings.interrupt_grace
        manager.adopt(core, asyncio.get_running_loop(), prepared)
        self._session = core
        return core

    def current(self) -> AsyncSession | None:
        """The session if it is up, without waiting or creating one."""
        s = self._session
        return s if s is not None and s.alive else None

    def dead(self) -> AsyncSession | None:
        """The session that was current and has died (not yet replaced), if any."""
        s = self._session
        return s if s is not None and not s.alive else None

    def forget(self) -> None:
        """The current session is gone or failed; the next `session()` makes a new one."""
        self._session = None

    async def discard(self, session: AsyncSession) -> None:
        """Remove a session's container (it is no longer the kernel's)."""
        if self._session is session:
            self._session = None
        if self.manager is not None:
            self.manager.release(session.session_id, "replaced")
        with contextlib.suppress(SandboxError):
            await session.close()

    def close(self) -> None:
        """Remove every container this kernel made (its session, its pool). Blocking."""
        pending = self._prepared
        if pending is not None:
            with contextlib.suppress(Exception):
                prepared = pending.result(timeout=30)
                prepared.stream.close()
                if self.manager is not None:
                    self.manager.backend.remove(prepared.container_id)
        with self._lock:
            manager, self.manager = self.manager, None
        if manager is not None:
            manager.close()
        self._executor.shutdown(wait=False)
