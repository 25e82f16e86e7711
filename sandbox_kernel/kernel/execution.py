"""Running one cell's code in the sandbox and publishing what it produces.

The executor turns agent events into Jupyter messages as they arrive, applies the output
policy and the per-cell output cap, answers input() through the frontend, watches a
silent sandbox, and turns verdicts (timeout, OOM, crash) into errors a user can act on.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

from ..errors import SandboxError
from ..sandbox.session import Run, Session
from ..sandbox.spec import CellResult, format_size, human_size
from .cells import Code

if TYPE_CHECKING:
    from .kernel import SandboxKernel

#: Without a frame for this long, the kernel asks the engine whether the sandbox still runs.
_WATCHDOG_S = 5.0
_MAX_TEXT = 1 << 24


def clean_text(value: Any, limit: int = _MAX_TEXT) -> str:
    """Text from the sandbox, bounded, with lone surrogates (unsendable) replaced."""
    if not isinstance(value, str):
        return ""
    text: str = value[:limit]
    if text.isascii():  # O(1) for the common case
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return text


class Executor:
    """Runs cells for one kernel (composition: the kernel owns one and delegates to it)."""

    def __init__(self, kernel: SandboxKernel) -> None:
        self.kernel = kernel

    async def run_shell(self, session: Session, cell: Code) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        streamed: list[bool] = []

        def out(name: str, text: str) -> None:
            streamed.append(True)
            loop.call_soon_threadsafe(self.kernel.stream, name, text)

        result = await asyncio.to_thread(session.execute_command, ["/bin/bash", "-c", cell.body],
                                         None, on_output=out)
        await asyncio.sleep(0)
        self.kernel.last_cell = {"verdict": "ok", "wall_seconds": result.duration_ms / 1000}
        if result.timed_out:
            self.kernel.last_cell["verdict"] = "timeout"
            return self.kernel.publish_error(
                "TimeoutError",
                f"cell timed out after {session.limits.timeout:g} s; its processes were killed")
        if result.oom_killed:
            self.kernel.last_cell["verdict"] = "oom"
            return self.kernel.publish_error("MemoryError", self._oom_text(session))
        if result.truncated_bytes:
            self.kernel.stream("stderr", self._truncation_text(session, result.truncated_bytes))
        if result.exit_code != 0 and not streamed and result.stderr:
            # e.g. the shell could not even start (no pids left): say why, not just "127"
            self.kernel.stream("stderr", result.stderr if result.stderr.endswith("\n")
                               else result.stderr + "\n")
        if result.exit_code != 0:
            self.kernel.last_cell["verdict"] = "error"
            return self.kernel.publish_error(
                "CalledProcessError", f"the shell exited with status {result.exit_code}")
        return {"status": "ok"}

    async def run_code(self, session: Session, cell: Code, silent: bool, store_history: bool,
                       user_expressions: dict[str, Any], allow_stdin: bool) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

        def on_event(frame: dict[str, Any]) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, frame)

        run = session.run(cell.body, on_event, lang=cell.lang,
                          execution_count=None if silent else self.kernel.execution_count,
                          allow_stdin=allow_stdin, silent=silent, store_history=store_history,
                          user_expressions=user_expressions)
        self.kernel.current_run = run
        state = _CellState(cap=session.limits.output)
        input_task: asyncio.Task[None] | None = None
        deadline = time.monotonic() + (run.hard_timeout or 1e9)
        try:
            while True:
                try:
                    frame = await asyncio.wait_for(queue.get(), _WATCHDOG_S)
                except asyncio.TimeoutError:
                    await self._watchdog(session, deadline)
                    continue
                ftype = frame.get("type")
                if ftype == "done":
                    break
                if ftype == "closed":
                    raise SandboxError(await asyncio.to_thread(session.diagnose))
                if ftype == "input_request":
                    if input_task is not None:
                        input_task.cancel()
                    input_task = asyncio.create_task(self._answer_input(run, frame))
                    continue
                self._publish_frame(frame, state, silent)
        finally:
            self.kernel.current_run = None
            if input_task is not None:
                input_task.cancel()
            session.touch(busy=-1)
        result = session.cell_result(frame)
        return self._finish(session, result, frame, state)

    async def _watchdog(self, session: Session, deadline: float) -> None:
        """No frames for a while: is the container still running (not paused, not gone)?"""
        state = await asyncio.to_thread(session.backend.state, session.container_id)
        if not state.exists or state.status != "running":
            reason = await asyncio.to_thread(session.diagnose)
            await asyncio.to_thread(self.kernel.launcher.discard, session)
            raise SandboxError(f"{reason}; the next cell starts a fresh sandbox")
        if time.monotonic() > deadline:
            await asyncio.to_thread(self.kernel.launcher.discard, session)
            raise SandboxError("the sandbox stopped answering and was removed; the next cell "
                               "starts a fresh sandbox")

    def _publish_frame(self, frame: dict[str, Any], state: _CellState, silent: bool) -> None:
        ftype = frame.get("type")
        if ftype == "error":
            tb = frame.get("traceback")
            state.error = {
                "ename": clean_text(frame.get("ename"), 200) or "Error",
                "evalue": clean_text(frame.get("evalue"), 100_000),
                "traceback": [clean_text(x, 100_000) for x in tb][:1000]
                if isinstance(tb, list) else [],
            }
            if not silent:
                self.kernel.publish("error", state.error)
            return
        if ftype == "payload":
            if frame.get("source") == "page":
                state.payload.append({"source": "page", "data": self.kernel.policy.bundle(
                    frame.get("data")), "start": frame.get("start") if isinstance(
                    frame.get("start"), int) else 0})
            return
        if silent:
            return
        if ftype == "stream":
            name = frame.get("name")
            text = clean_text(frame.get("text"))
            if name not in ("stdout", "stderr") or not text:
                return
            room = state.cap - state.chars
            if room <= 0:
                state.dropped += len(text)
                return
            if len(text) > room:
                state.dropped += len(text) - room
                text = text[:room]
            state.chars += len(text)
            self.kernel.stream(str(name), text)
        elif ftype in ("display", "result"):
            data = self.kernel.policy.bundle(frame.get("data"))
            if not data:
                return
            state.chars += sum(len(v) for v in data.values() if isinstance(v, str))
            md = self.kernel.policy.metadata(frame.get("metadata"))
            if ftype == "result":
                self.kernel.publish("execute_result", {
                    "execution_count": self.kernel.execution_count, "data": data, "metadata": md})
                plain = data.get("text/plain")
                state.result_text = plain if isinstance(plain, str) else ""
                return
            transient = frame.get("transient")
            display_id = transient.get("display_id") if isinstance(transient, dict) else None
            content: dict[str, Any] = {"data": data, "metadata": md, "transient": {}}
            if isinstance(display_id, str):
                content["transient"] = {"display_id": display_id[:200]}
            update = frame.get("update") is True and isinstance(display_id, str)
            self.kernel.publish("update_display_data" if update else "display_data", content)
        elif ftype == "clear":
            self.kernel.publish("clear_output", {"wait": frame.get("wait") is True})

    async def _answer_input(self, run: Run, frame: dict[str, Any]) -> None:
        """Forward an input() from the sandbox to the frontend and its answer back."""
        value = await self.kernel.ask(clean_text(frame.get("prompt"), 10_000),
                                      frame.get("password") is True)
        await asyncio.to_thread(run.send_input, "\x04" if value is None else value)

    def _oom_text(self, session: Session) -> str:
        mem = human_size(session.limits.memory)
        bigger = format_size(min(session.limits.memory * 2, self.kernel.ceilings.memory))
        return (f"cell exceeded the {mem} memory limit (OOM); interpreter restarted, /sandbox "
                f"files kept. Raise it with: %sandbox limits memory={bigger}")

    @staticmethod
    def _truncation_text(session: Session, dropped: int) -> str:
        return (f"\n[sandbox] output truncated after {human_size(session.limits.output)}: "
                f"{dropped:,} more characters were not shown (raise with "
                "%sandbox limits output=16m)\n")

    def _finish(self, session: Session, result: CellResult, frame: dict[str, Any],
                state: _CellState) -> dict[str, Any]:
        dropped = state.dropped + result.dropped_chars
        if dropped:
            self.kernel.stream("stderr", self._truncation_text(session, dropped))
        verdict = {"cpu_time": "timeout", "crashed": "error"}.get(result.verdict,
                                                                 result.verdict)
        self.kernel.last_cell = {
            "verdict": verdict, "wall_seconds": round(result.duration_ms / 1000, 4),
            "cpu_seconds": result.cpu_seconds, "peak_memory": result.peak_memory,
        }
        if verdict != result.verdict:
            self.kernel.last_cell["reason"] = result.verdict
        if result.state_lost:
            if result.verdict == "oom":
                return self.kernel.publish_error("MemoryError", self._oom_text(session))
            lost = "its interpreter was restarted: variables were lost, /sandbox files kept"
            if result.verdict == "timeout":
                return self.kernel.publish_error(
                    "TimeoutError", f"{result.message}; the cell ignored the interrupt and "
                    f"was killed, {lost}")
            if result.verdict == "cpu_time":
                return self.kernel.publish_error("TimeoutError", f"{result.message}; {lost}")
            if result.verdict == "interrupted":
                return self.kernel.publish_error(
                    "KeyboardInterrupt", f"the cell ignored the interrupt for "
                    f"{self.kernel.settings.interrupt_grace:g} s and was killed; {lost}")
            how = f" ({result.exit_signal})" if result.exit_signal else ""
            return self.kernel.publish_error("SandboxError",
                                             f"the interpreter crashed{how}; {lost}")
        expressions = frame.get("user_expressions")
        reply: dict[str, Any] = {
            "status": "ok", "payload": state.payload,
            "user_expressions": self._clean_expressions(expressions),
        }
        if state.error is not None or result.verdict != "ok":
            err = state.error or {"ename": "SandboxError", "evalue": result.message or
                                  result.verdict, "traceback": []}
            reply.update(status="error", **err)
        self.kernel.cell_output = state.result_text
        return reply

    def _clean_expressions(self, raw: Any) -> dict[str, Any]:
        if not isinstance(raw, dict):
            return {}
        out: dict[str, Any] = {}
        for key, value in list(raw.items())[:100]:
            if not isinstance(key, str) or not isinstance(value, dict):
                continue
            if value.get("status") == "ok":
                out[key] = {"status": "ok", "data": self.kernel.policy.bundle(value.get("data")),
                            "metadata": self.kernel.policy.metadata(value.get("metadata"))}
            else:
                out[key] = {"status": "error", "ename": clean_text(value.get("ename"), 200),
                            "evalue": clean_text(value.get("evalue"), 10_000), "traceback": []}
        return out


class _CellState:
    """What one cell has published so far (for the output cap and the reply)."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.chars = 0
        self.dropped = 0
        self.error: dict[str, Any] | None = None
        self.payload: list[dict[str, Any]] = []
        self.result_text = ""
