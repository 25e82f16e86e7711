"""SandboxManager: the seed's session manager, in Python.

It creates sessions (cold, or claimed from a warm pool), runs commands and file
operations in them, reports health, changes limits live, emits the seed's events, and
cleans up every `cleanup_interval` seconds: idle sessions, dead ones, and orphaned
containers of ours whose owner process is gone.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .. import __version__
from ..errors import SandboxError, SessionNotFound
from .backend import LABEL_SESSION, LABEL_VERSION, AgentStream, Backend
from .cleanup import Cleaner, CleanupReport
from .engines import make_backend
from .image import default_image
from .pool import Pool
from .reaper import Owner, owner_labels
from .session import AsyncSession
from .spec import ContainerSpec, ExecResult, FileInfo, FileOp, Health, Limits, SessionInfo
from .sync import LoopThread, Session, call

log = logging.getLogger(__name__)

EVENTS = ("session:created", "execution:completed", "execution:error", "session:cleanup",
          "error")
#: Variables every sandbox gets; nothing from the host environment is passed on.
BASE_ENV = {"SANDBOX": "1"}


@dataclass(frozen=True)
class Prepared:
    """A container ready for its agent's greeting, and the stream to greet it on."""

    container_id: str
    session_id: str
    limits: Limits
    stream: AgentStream
    pooled: bool
    started: float


def close_quietly(session: Session) -> None:
    """Close a session during cleanup, where a dead engine must not raise."""
    try:
        session.close()
    except SandboxError:
        pass


class SandboxManager:
    """Creates and tracks sandbox sessions on one backend. Thread-safe; a context manager."""

    def __init__(self, image: str | None = None, limits: Limits | None = None, *,
                 ceilings: Limits | None = None, pool_size: int = 0,
                 idle_timeout: float = 1800.0, cleanup_interval: float = 60.0,
                 env: dict[str, str] | None = None, backend: Backend | None = None,
                 reap_on_start: bool = True, runtime: str | None = None) -> None:
        self.backend = backend if backend is not None else make_backend()
        self.image = image or default_image()
        #: The engine's OCI runtime for every sandbox (e.g. runsc); None: the engine default.
        self.runtime = runtime or None
        self.limits = limits or Limits()
        self.ceilings = ceilings
        if ceilings is not None:
            self.limits.check_within(ceilings)
        self.cleanup_interval = cleanup_interval
        self.env = {**BASE_ENV, **(env or {})}
        self.owner = Owner.current()
        self.labels = {**owner_labels(self.owner), LABEL_VERSION: __version__}
        self._sessions: dict[str, Session] = {}
        self._lock = threading.RLock()
        self._listeners: dict[str, list[Callable[[dict[str, Any]], None]]] = {e: [] for e in
                                                                              EVENTS}
        self._closed = False
        self._loop_thread: LoopThread | None = None
        self.pool = Pool(self.backend, self.image, self.limits, self.env, pool_size, self.labels,
                         self.owner, runtime=self.runtime)
        self.cleaner = Cleaner(self.backend, self._tracked, self._drop, self.emit, idle_timeout)
        self.cleaner.start(cleanup_interval, reap_now=reap_on_start)
        self.pool.start()

    @property
    def idle_timeout(self) -> float:
        return self.cleaner.idle_timeout

    # ----- events -------------------------------------------------------------------------
    def on(self, event: str, callback: Callable[[dict[str, Any]], None]) -> None:
        """Call `callback(data)` on an event: one of EVENTS."""
        if event not in self._listeners:
            raise ValueError(f"unknown event {event!r}; events are: {', '.join(EVENTS)}")
        self._listeners[event].append(callback)

    def emit(self, event: str, **data: Any) -> None:
        for callback in list(self._listeners.get(event, ())):
            try:
                callback(data)
            except Exception as exc:  # noqa: BLE001 - a listener must not break the manager
                log.warning("listener for %s failed: %s", event, exc)
                if event != "error":
                    self.emit("error", error=exc)

    # ----- sessions -----------------------------------------------------------------------
    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The manager's own event loop (a daemon thread) for synchronous callers."""
        with self._lock:
            if self._loop_thread is None:
                self._loop_thread = LoopThread("sandbox-manager")
            return self._loop_thread.loop

    def create_session(self, limits: Limits | None = None) -> str:
        """Start a sandbox (from the pool when limits match) and return its session id."""
        return self.open_session(limits).session_id

    def open_session(self, limits: Limits | None = None) -> Session:
        """Like create_session, but return the Session object itself."""
        prepared = self.prepare(limits)
        core = call(self.loop, self.connect(prepared))
        return self.adopt(core, self.loop, prepared)

    def prepare(self, limits: Limits | None = None) -> Prepared:
        """The engine side of a new session (blocking): a claimed or started container."""
        if self._closed:
            raise SandboxError("this SandboxManager is closed")
        lim = limits or self.limits
        if self.ceilings is not None:
            lim.check_within(self.ceilings)
        t0 = time.perf_counter()
        if self.pool.matches(self.image, lim, self.env, self.runtime):
            claimed = self.pool.claim()
            if claimed is not None:
                cid, sid = claimed
                try:
                    return Prepared(cid, sid, lim, self.backend.attach(cid), True, t0)
                except SandboxError as exc:
                    log.warning("pooled sandbox was unusable (%s); starting a new one", exc)
        sid = secrets.token_hex(6)
        spec = ContainerSpec(image=self.image, name=self.owner.container_name(sid), limits=lim,
                             labels={**self.labels, LABEL_SESSION: sid}, env=self.env,
                             runtime=self.runtime)
        try:
            cid = self.backend.create(spec)
            try:
                stream = self.backend.attach(cid)
                self.backend.start(cid)
            except BaseException:
                self.backend.remove(cid)
                raise
        except SandboxError as exc:
            self.emit("error", error=exc)
            raise
        return Prepared(cid, sid, lim, stream, False, t0)

    async def connect(self, prepared: Prepared) -> AsyncSession:
        """Greet the prepared container's agent, on the calling event loop."""
        try:
            return await AsyncSession.connect(
                self.backend, prepared.container_id, prepared.session_id, self.image,
                prepared.limits, prepared.stream, ceilings=self.ceilings,
                timeout=10 if prepared.pooled else 30)
        except SandboxError as exc:
            self.emit("error", error=exc)
            raise

    def adopt(self, core: AsyncSession, loop: asyncio.AbstractEventLoop,
              prepared: Prepared) -> Session:
        """Track a connected session (for cleanup and events); return its facade."""
        session = Session(core, loop)
        with self._lock:
            self._sessions[core.session_id] = session
        self.emit("session:created", session_id=core.session_id,
                  container_id=core.container_id, pooled=prepared.pooled,
                  duration_ms=(time.perf_counter() - prepared.started) * 1000)
        return session

    def session(self, session_id: str) -> Session:
        with self._lock:
            s = self._sessions.get(session_id)
        if s is None:
            raise SessionNotFound(f"no sandbox session {session_id!r}")
        return s

    def list_sessions(self) -> list[SessionInfo]:
        with self._lock:
            sessions = list(self._sessions.values())
        return [
            SessionInfo(session_id=s.session_id, container_id=s.container_id, image=s.image,
                        created_at=s.created_at, last_activity_at=s.last_activity_at,
                        memory_limit=s.limits.memory, cpu_limit=s.limits.cpus,
                        pids_limit=s.limits.pids, alive=s.alive)
            for s in sessions
        ]

    def release(self, session_id: str, reason: str = "released") -> None:
        """Stop tracking a session its owner closes itself (on its own event loop)."""
        with self._lock:
            s = self._sessions.pop(session_id, None)
        if s is not None:
            self.emit("session:cleanup", session_id=session_id, reason=reason)

    def destroy_session(self, session_id: str, reason: str = "destroyed") -> None:
        with self._lock:
            s = self._sessions.pop(session_id, None)
        if s is None:
            raise SessionNotFound(f"no sandbox session {session_id!r}")
        close_quietly(s)
        self.emit("session:cleanup", session_id=session_id, reason=reason)

    # ----- work in a session ----------------------------------------------------------------
    def execute_command(self, session_id: str, command: str | list[str],
                        timeout: float | None = None) -> ExecResult:
        session = self.session(session_id)
        try:
            result = session.execute_command(command, timeout)
        except SandboxError as exc:
            self.emit("execution:error", session_id=session_id, error=exc)
            raise
        self.emit("execution:completed", session_id=session_id, result=result)
        return result

    def file_operation(self, session_id: str, op: FileOp) -> str | list[str] | int | None:
        """The seed's fileOperation: read -> text, list -> names, write -> bytes written."""
        s = self.session(session_id)
        if op.type == "read":
            return s.read_file(op.path).decode("utf-8", "replace")
        if op.type == "write":
            return s.write_file(op.path, op.content if op.content is not None else b"")
        if op.type == "delete":
            s.delete_file(op.path)
            return None
        if op.type == "list":
            return [e.name for e in s.list_files(op.path)]
        raise ValueError(f"unknown file operation {op.type!r}; use read, write, delete or list")

    def read_file(self, session_id: str, path: str) -> bytes:
        return self.session(session_id).read_file(path)

    def write_file(self, session_id: str, path: str, content: bytes | str) -> int:
        return self.session(session_id).write_file(path, content)

    def list_files(self, session_id: str, path: str = "/sandbox") -> list[FileInfo]:
        return self.session(session_id).list_files(path)

    def delete_file(self, session_id: str, path: str, recursive: bool = False) -> None:
        self.session(session_id).delete_file(path, recursive)

    def get_session_health(self, session_id: str) -> Health:
        return self.session(session_id).health()

    def update_session_limits(self, session_id: str, *, memory: object = None,
                              cpus: object = None, pids: object = None, timeout: object = None,
                              cpu_time: object = None) -> Limits:
        changes = {k: v for k, v in (("memory", memory), ("cpus", cpus), ("pids", pids),
                                     ("timeout", timeout), ("cpu_time", cpu_time))
                   if v is not None}
        return self.session(session_id).update_limits(**changes)

    # ----- cleanup ------------------------------------------------------------------------
    def cleanup(self) -> CleanupReport:
        """One pass: idle sessions, dead sessions, and orphaned containers of ours."""
        return self.cleaner.run_once()

    def _tracked(self) -> dict[str, Session]:
        with self._lock:
            return dict(self._sessions)

    def _drop(self, sid: str, reason: str) -> None:
        try:
            self.destroy_session(sid, reason=reason)
        except SessionNotFound:
            pass

    def close(self) -> None:
        """Destroy every session and the pool. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self.cleaner.stop()
        with self._lock:
            sessions = list(self._sessions.values())
            self._sessions.clear()
        for s in sessions:
            close_quietly(s)
            self.emit("session:cleanup", session_id=s.session_id, reason="manager closed")
        self.pool.close()
        if self._loop_thread is not None:
            self._loop_thread.stop()

    def __enter__(self) -> SandboxManager:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
