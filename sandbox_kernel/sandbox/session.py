"""One sandbox, asynchronously: a running container and the channel to its agent.

This is the one session core (docs/architecture.md, "Layers"): the kernel awaits it on its
own event loop; the library and the CLI use it through the synchronous facade in sync.py.
Engine calls (docker-py is blocking) run in worker threads from here only.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any, TypeVar

from ..agent.frames import Frame
from ..agent.protocol import PROTOCOL_VERSION
from ..errors import (
    AgentError,
    LimitError,
    LiveLimitsUnsupported,
    ProtocolError,
    SandboxError,
    SandboxTimeout,
    SessionGone,
    UsageError,
)
from .backend import AgentStream, Backend
from .channel import Channel
from .direct import upgrade
from .files import Files
from .health import health_of, stopped_reason
from .image import build_hint
from .runs import CellRun, run_command
from .spec import RULES, ExecResult, Health, Limits
from .units import format_size

T = TypeVar("T")
#: Seconds the interrupt leaves a cell before its interpreter is killed, unless told.
DEFAULT_GRACE = 3.0


class AsyncSession:
    """A connected sandbox. Make one with `AsyncSession.connect`."""

    def __init__(self, backend: Backend, container_id: str, session_id: str, image: str,
                 limits: Limits, channel: Channel, ceilings: Limits | None = None) -> None:
        self.backend = backend
        self.container_id = container_id
        self.session_id = session_id
        self.image = image
        self.limits = limits
        self.ceilings = ceilings
        self.channel = channel
        self.created_at = time.time()
        self.last_activity_at = self.created_at
        self.agent: Frame = {}
        self.grace = DEFAULT_GRACE
        self.files = Files(self)
        self._busy = 0
        self._prev_stats: dict[str, Any] | None = None
        self._closed = False

    # ----- lifecycle ----------------------------------------------------------------------
    @classmethod
    async def connect(cls, backend: Backend, container_id: str, session_id: str, image: str,
                      limits: Limits, stream: AgentStream, *, ceilings: Limits | None = None,
                      timeout: float = 30.0) -> AsyncSession:
        """Greet the agent of a started (or claimed) container over its attached stream
        (moved to the direct link first where the backend offers one)."""
        channel = Channel(stream, name=f"sandbox-{session_id}")
        session = cls(backend, container_id, session_id, image, limits, channel, ceilings)
        try:
            try:
                channel.start(await upgrade(stream, backend.link_dir(container_id, session_id),
                                            timeout))
            finally:
                backend.link_done(container_id, session_id)
            session.agent = _checked(await channel.request("hello", timeout=timeout), image,
                                     backend.requires_separation)
        except BaseException as exc:
            await session.close()  # an unstarted channel closes the attach it holds
            if isinstance(exc, SandboxTimeout):
                raise SessionGone("the sandbox agent did not start; see 'sandbox-kernel "
                                  "doctor'") from None
            raise
        return session

    @property
    def alive(self) -> bool:
        return not self.channel.closed

    @property
    def busy(self) -> bool:
        return self._busy > 0

    def touch(self, busy: int = 0) -> None:
        self._busy = max(0, self._busy + busy)
        self.last_activity_at = time.time()

    async def engine(self, fn: Callable[..., T], *args: Any) -> T:
        """A blocking backend call, in a thread."""
        return await asyncio.to_thread(fn, *args)

    async def close(self) -> None:
        """Disconnect (the agent exits on EOF) and remove the container. Idempotent."""
        if self._closed:
            return
        self._closed = True
        await self.channel.aclose("the sandbox was closed")
        await self.engine(self.backend.remove, self.container_id)

    def close_now(self) -> None:
        """Close from any thread when the session's loop no longer runs (exit paths)."""
        if self._closed:
            return
        self._closed = True
        self.channel.close("the sandbox was closed")
        self.backend.remove(self.container_id)

    async def replace(self, reason: str) -> None:
        """The host gives up on this sandbox: it is removed and says why."""
        self.channel.close(reason)
        try:
            await self.close()
        except SandboxError:
            pass

    async def check_running(self) -> None:
        """If the engine says the container is not running (paused, gone), give it up."""
        st = await self.engine(self.backend.state, self.container_id)
        if not st.exists or st.status != "running":
            reason = f"{await self.diagnose()}; the next cell starts a fresh sandbox"
            await self.replace(reason)
            raise SessionGone(reason)

    async def oom_killed(self) -> bool:
        """Whether the engine says the container was stopped for memory."""
        try:
            st = await self.engine(self.backend.state, self.container_id)
        except SandboxError:
            return False
        return st.exists and st.oom_killed

    async def diagnose(self, stalled: bool = False) -> str:
        """One sentence on why the sandbox stopped answering, from the engine's view."""
        if self._closed or self.channel.broken:
            return self.channel.close_reason()  # the host closed it, and said why
        try:
            st = await self.engine(self.backend.state, self.container_id)
        except SandboxError as exc:
            return str(exc)
        return stopped_reason(st, self.limits.memory) or (
            "the sandbox agent stopped answering" if stalled else self.channel.close_reason())

    async def request(self, rtype: str, timeout: float = 30.0, activity: bool = True,
                      **fields: Any) -> dict[str, Any]:
        """A request answered by a reply: its body, or the agent's error as SandboxError."""
        if activity:
            self.touch()
        try:
            frame = await self.channel.request(rtype, timeout=timeout, **fields)
        except SessionGone:
            raise SessionGone(await self.diagnose()) from None
        except SandboxTimeout:
            raise SessionGone(await self.diagnose(stalled=True)) from None
        if frame["type"] != "reply":
            raise ProtocolError(f"the sandbox answered {rtype} with {frame['type']}")
        if frame["status"] != "ok":
            raise AgentError(frame.get("message", "failed"), frame.get("code", "EIO"))
        body: dict[str, Any] = frame.get("body") or {}
        return body

    # ----- code ---------------------------------------------------------------------------
    async def run(self, code: str, *, lang: str = "python", execution_count: int | None = None,
                  allow_stdin: bool = False, silent: bool = False, store_history: bool = True,
                  user_expressions: dict[str, str] | None = None) -> CellRun:
        """Start a cell; iterate `events()` of the result for its output."""
        lim = self.limits
        self.touch(busy=+1)
        try:
            call = await self.channel.call(
                "run", code=code, lang=lang, timeout=lim.timeout, cpu_time=lim.cpu_time,
                output_cap=lim.output, grace=self.grace, execution_count=execution_count,
                allow_stdin=allow_stdin, silent=silent, store_history=store_history,
                user_expressions=user_expressions or {})
        except SessionGone:
            self.touch(busy=-1)
            raise SessionGone(await self.diagnose()) from None
        except BaseException:
            self.touch(busy=-1)
            raise
        return CellRun(self, call, lim.timeout, self.grace)

    async def interrupt(self, target: int | None = None, grace: float = DEFAULT_GRACE) -> bool:
        """SIGINT the running cell or command; the agent kills it if it ignores that."""
        body = await self.request("interrupt", target=target, grace=grace, timeout=10)
        return body["delivered"] is True

    async def execute_command(self, command: str | list[str], timeout: float | None = None, *,
                              on_output: Callable[[str, str], Any] | None = None,
                              env: dict[str, str] | None = None) -> ExecResult:
        """Run a shell command (a string for /bin/sh -c, or an argv list) to completion."""
        limit = self.limits.timeout if timeout is None else RULES["timeout"].parse(
            timeout, "timeout", self.ceilings.timeout if self.ceilings else None)
        argv = command if isinstance(command, list) else ["/bin/sh", "-c", command]
        if not argv or not all(isinstance(a, str) for a in argv):
            raise UsageError("a command is a string or a non-empty list of strings")
        self.touch(busy=+1)
        try:
            return await run_command(self, argv, limit, on_output, env or {})
        except SessionGone:
            raise SessionGone(await self.diagnose()) from None
        finally:
            self.touch(busy=-1)

    async def complete(self, code: str, cursor_pos: int, lang: str = "python") -> dict[str, Any]:
        return await self.request("complete", code=code, cursor_pos=cursor_pos, lang=lang,
                                  timeout=15)

    async def inspect(self, code: str, cursor_pos: int, detail_level: int = 0,
                      lang: str = "python") -> dict[str, Any]:
        return await self.request("inspect", code=code, cursor_pos=cursor_pos,
                                  detail_level=detail_level, lang=lang, timeout=15)

    async def is_complete(self, code: str, lang: str = "python") -> dict[str, Any]:
        return await self.request("is_complete", code=code, lang=lang, timeout=15)

    async def get_var(self, lang: str, name: str) -> str:
        """A variable of an interpreter (python or node), as JSON text."""
        try:
            body = await self.request("get_var", lang=lang, name=name, timeout=30)
        except AgentError as exc:
            raise UsageError(str(exc)) from None
        return str(body["json"])

    async def set_var(self, lang: str, name: str, json_text: str) -> None:
        try:
            await self.request("set_var", lang=lang, name=name, json=json_text, timeout=30)
        except AgentError as exc:
            raise UsageError(str(exc)) from None

    async def restart_interpreter(self, lang: str = "python") -> None:
        await self.request("restart", lang=lang, timeout=15)

    async def set_env(self, env: dict[str, str | None]) -> None:
        try:
            await self.request("set_env", env=env, timeout=15)
        except AgentError as exc:
            raise UsageError(str(exc)) from None

    # ----- health and limits ----------------------------------------------------------------
    async def stats(self, activity: bool = True) -> dict[str, Any]:
        """The agent's counters (a monitor passes activity=False: reading is not use)."""
        return await self.request("stats", timeout=10, activity=activity)

    async def health(self, threshold: float = 95.0, activity: bool = True) -> Health:
        """Memory, CPU (percent of one core since the last reading) and process use."""
        cur = await self.stats(activity)
        prev = self._prev_stats
        if prev is None or not 0.05 <= cur["taken_at"] - prev["taken_at"] <= 30:
            prev = cur
            await asyncio.sleep(0.1)
            cur = await self.stats(activity)
        self._prev_stats = cur
        return health_of(prev, cur, threshold)

    async def update_limits(self, **changes: object) -> Limits:
        """Change limits live ('256m', 0.5, '2m'...); cgroup limits apply without a restart."""
        fixed = {k for k in changes if k.replace("-", "_") in ("file_size", "sandbox_size",
                                                                 "tmp_size", "packages_size")}
        if fixed:
            raise LimitError(f"{', '.join(sorted(fixed))} cannot change on a running sandbox; "
                             "restart it with new limits")
        new = self.limits.changed(self.ceilings, **changes)
        if (new.memory, new.cpus, new.pids) != (self.limits.memory, self.limits.cpus,
                                                self.limits.pids):
            try:
                await self.engine(self.backend.update, self.container_id, new)
            except (SessionGone, LiveLimitsUnsupported):
                raise
            except SandboxError as exc:
                if new.memory < self.limits.memory:
                    raise LimitError(
                        f"memory cannot drop to {format_size(new.memory)} while the sandbox "
                        "uses more than that; free memory first") from exc
                raise
        self.limits = replace(new)
        self.touch()
        return self.limits

    def __repr__(self) -> str:
        return f"<AsyncSession {self.session_id} container={self.container_id[:12]}>"


def _checked(hello: Frame, image: str, separation: bool) -> Frame:
    """The agent's hello, if it speaks our protocol and (where required) is not cell code."""
    if hello.get("type") != "hello" or hello.get("version") != PROTOCOL_VERSION:
        raise ProtocolError(f"the sandbox agent speaks protocol {hello.get('version')!r}, not "
                            f"{PROTOCOL_VERSION}; re{build_hint(image)}")
    if hello["agent_uid"] == hello["worker_uid"] and separation:
        raise ProtocolError(
            "the sandbox agent could not separate itself from cell code (it runs as the "
            "same user); the engine ignored the container's user or capabilities")
    return hello
