"""A cell in flight, with the host's own deadline, and one-shot commands.

The agent enforces each cell's limits, and the host does not depend on it doing so: if no
`done` arrives by the deadline, the host interrupts; if none arrives within the grace
period after that, it replaces the sandbox and reports the timeout itself
(docs/architecture.md, "Who enforces what").
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any, cast

from ..agent.frames import Frame
from ..errors import AgentError, SandboxError, SandboxTimeout, SessionGone
from .spec import CellResult, ExecResult, Verdict

if TYPE_CHECKING:
    from .channel import Call
    from .session import AsyncSession

#: Seconds past the deadline before the host interrupts a cell the agent did not stop.
INTERRUPT_AFTER = 0.5
#: Seconds past the interrupt's grace before the host replaces the sandbox.
REPLACE_AFTER = 1.0
#: Without any frame for this long, the host asks the engine whether the sandbox runs.
WATCHDOG_S = 5.0


def cell_result(frame: Frame) -> CellResult:
    """A `done` frame (already checked against the contract) as a CellResult."""
    return CellResult(
        verdict=cast(Verdict, frame["verdict"]), duration_ms=float(frame["duration_ms"]),
        cpu_seconds=float(frame["cpu_seconds"]) if not frame["state_lost"] else None,
        peak_memory=frame["peak_memory"], state_lost=frame["state_lost"],
        message=frame["message"], dropped_chars=frame["dropped_bytes"],
        dropped_outputs=frame["dropped_outputs"],
        exit_signal=frame["exit_signal"])


class CellRun:
    """The events of one cell (`events()`), then its `result`. Made by AsyncSession.run."""

    def __init__(self, session: AsyncSession, call: Call, timeout: float, grace: float) -> None:
        self.session = session
        self.call = call
        self.timeout = timeout
        self.grace = grace
        self.result: CellResult | None = None
        self.done: Frame | None = None
        loop = asyncio.get_running_loop()
        self.deadline = loop.time() + timeout

    @property
    def id(self) -> int:
        return self.call.id

    async def send_input(self, value: str) -> None:
        await self.session.channel.send(_input_reply(self.call.id, value))

    async def interrupt(self, grace: float = 3.0) -> bool:
        return await self.session.interrupt(self.call.id, grace)

    async def events(self) -> AsyncIterator[Frame]:
        """Output frames as they arrive; the iteration ends when the cell has ended."""
        loop = asyncio.get_running_loop()
        stage = 0  # 0: before the deadline, 1: host interrupted, 2: replaced
        try:
            while True:
                limits = (self.deadline + INTERRUPT_AFTER,
                          self.deadline + INTERRUPT_AFTER + self.grace + REPLACE_AFTER)
                wait = min(WATCHDOG_S, max(0.0, limits[min(stage, 1)] - loop.time()))
                try:
                    frame = await self.call.next(wait)
                except SandboxTimeout:
                    stage = await self._overdue(stage, limits, loop.time())
                    if stage == 2:
                        return
                    continue
                if frame["type"] == "done":
                    self.done = frame
                    self.result = cell_result(frame)
                    return
                if frame["type"] == "reply":  # the agent could not run it at all
                    raise AgentError(f"the cell could not start: {frame.get('message', '?')}",
                                     frame.get("code", "EAGENT"))
                yield frame
        except SessionGone:
            reason = await self.session.diagnose()
            if not await self.session.oom_killed():
                raise SessionGone(reason) from None
            # The runtime killed the whole sandbox for memory (gVisor does): still an OOM.
            self.result = CellResult(verdict="oom", duration_ms=0.0, state_lost=True,
                                     message=reason)
        finally:
            self.session.channel.forget(self.call)
            self.session.touch(busy=-1)

    async def _overdue(self, stage: int, limits: tuple[float, float], now: float) -> int:
        """No frame for a while: check the container; past the deadline, take over."""
        if now < limits[0]:
            await self.session.check_running()
            return stage
        if stage == 0:
            try:
                await asyncio.wait_for(self.session.interrupt(self.call.id, self.grace), 1)
            except (SandboxError, asyncio.TimeoutError):
                pass  # a stopped or lying agent: the sandbox is replaced at the next stage
            return 1
        if now < limits[1]:
            return stage
        text = (f"cell timed out after {self.timeout:g} s; the sandbox did not stop it and "
                "was replaced")
        await self.session.replace(text)
        self.result = CellResult(verdict="timeout", duration_ms=(now - self.deadline +
                                 self.timeout) * 1000, state_lost=True, message=text)
        return 2


def _input_reply(cid: int, value: str) -> bytes:
    from ..agent.frames import encode

    return encode({"id": cid, "type": "input_reply", "value": value})


def exec_result(frame: Frame) -> ExecResult:
    return ExecResult(exit_code=frame["exit_code"], stdout=frame["stdout"],
                      stderr=frame["stderr"], duration_ms=float(frame["duration_ms"]),
                      timed_out=frame["timed_out"], oom_killed=frame["oom_killed"],
                      interrupted=frame["interrupted"], truncated_bytes=frame["dropped_bytes"])


async def run_command(session: AsyncSession, argv: list[str], timeout: float,
                      on_output: Callable[[str, str], Any] | None,
                      env: dict[str, str]) -> ExecResult:
    """A command to completion; the host waits at most its timeout plus a margin."""
    call = await session.channel.call("exec", argv=argv, timeout=timeout,
                                      output_cap=session.limits.output,
                                      stream=on_output is not None, env=env)
    try:
        async for frame in call.frames(timeout + INTERRUPT_AFTER + REPLACE_AFTER + 5):
            if frame["type"] == "stream" and on_output is not None:
                on_output(frame["name"], frame["text"])
            elif frame["type"] == "exited":
                return exec_result(frame)
        raise SessionGone("the sandbox ended the command without a result")
    except SandboxTimeout:
        await session.replace(f"a command ran past its {timeout:g} s timeout and the sandbox "
                              "did not stop it; the sandbox was replaced")
        return ExecResult(exit_code=-1, stdout="", stderr="", duration_ms=timeout * 1000,
                          timed_out=True)
    finally:
        session.channel.forget(call)
