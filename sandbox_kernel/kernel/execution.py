"""Running one cell's code in the sandbox and publishing what it produces.

The executor awaits the session core directly: each event is made safe by the output
policy (policy/), counted against the cell's output budget and published on IOPub as it
arrives, at the pace the frontend reads; the cell's end (verdict, figures) becomes the
reply and its accounting, returned as one `Outcome`. It sees the kernel only through the
narrow `Frontend` interface (interfaces.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..errors import SandboxError, SessionGone
from ..sandbox.channel import Call
from ..sandbox.runs import CellRun
from ..sandbox.session import AsyncSession
from ..sandbox.spec import CellResult, Limits
from ..sandbox.units import human_size
from .cells import Code
from .interfaces import CommSink, Frontend
from .policy import CleanOutput, OutputBudget, OutputPolicy, clean_text, notice_line
from .verdicts import VERDICT_ERRORS, lost_error, oom_text, raise_hint, truncation_text

_RELAYED = frozenset({"stream", "display", "clear", "result", "error", "comm_open",
                      "comm_msg", "comm_close"})


@dataclass
class Outcome:
    """How a cell ended: the execute_reply content, its accounting, its result's text."""

    reply: dict[str, Any]
    accounting: dict[str, Any]
    result_text: str = ""


def error_content(ename: str, evalue: str, traceback: list[str] | None = None) -> dict[str, Any]:
    return {"ename": ename, "evalue": evalue,
            "traceback": traceback if traceback is not None else [f"{ename}: {evalue}"]}


def with_notice(out: CleanOutput) -> dict[str, Any]:
    """The data of an output with no room for a separate line (inspect, pager, user
    expressions): the notice goes at the end of its text/plain."""
    if not out.notes:
        return out.data
    plain = out.data.get("text/plain", "")
    return {**out.data, "text/plain": f"{plain}\n{notice_line(out.notes)}".lstrip("\n")}


@dataclass
class _CellState:
    """What one cell has published so far (for the output budget and the reply)."""

    budget: OutputBudget
    error: dict[str, Any] | None = None
    payload: list[dict[str, Any]] = field(default_factory=list)
    result_text: str = ""

    @classmethod
    def fresh(cls, limits: Limits) -> _CellState:
        return cls(OutputBudget(limits.output, human_size(limits.output)))


class Executor:
    """Runs cells for one kernel (the kernel owns one and delegates to it)."""

    def __init__(self, frontend: Frontend, policy: OutputPolicy, ceilings: Limits,
                 grace: float) -> None:
        self.frontend = frontend
        self.policy = policy
        self.ceilings = ceilings
        self.grace = grace
        self.comms: CommSink | None = None

    def _error(self, ename: str, evalue: str, verdict: str, **acct: Any) -> Outcome:
        content = error_content(ename, evalue)
        self.frontend.publish("error", content)
        return Outcome({"status": "error", **content}, {"verdict": verdict, **acct})

    async def run_shell(self, session: AsyncSession, cell: Code) -> Outcome:
        streamed: list[bool] = []

        def out(name: str, text: str) -> None:
            streamed.append(True)
            self.frontend.publish("stream", {"name": name, "text": clean_text(text)})

        result = await session.execute_command(["/bin/bash", "-c", cell.body], on_output=out)
        wall = {"wall_seconds": round(result.duration_ms / 1000, 4)}
        if result.timed_out:
            return self._error("TimeoutError", f"cell timed out after {session.limits.timeout:g}"
                               " s; its processes were killed", "timeout", **wall)
        if result.oom_killed:
            return self._error("MemoryError", oom_text(session.limits, self.ceilings), "oom",
                               **wall)
        if result.truncated_bytes:
            self._stream("stderr", truncation_text(session.limits, self.ceilings,
                                                   result.truncated_bytes))
        if result.exit_code != 0 and not streamed and result.stderr:
            # e.g. the shell could not even start (no pids left): say why, not just "127"
            self._stream("stderr", result.stderr if result.stderr.endswith("\n")
                         else result.stderr + "\n")
        if result.exit_code != 0:  # IPython's %%bash words it so (its cell, newline-ended)
            body = cell.body if cell.body.endswith("\n") else cell.body + "\n"
            return self._error("CalledProcessError",
                               f"Command '{body.encode()!r}' returned non-zero exit status "
                               f"{result.exit_code}.", "error", **wall)
        return Outcome({"status": "ok"}, {"verdict": "ok", **wall})

    def _stream(self, name: str, text: str) -> None:
        self.frontend.publish("stream", {"name": name, "text": text})

    async def run_code(self, session: AsyncSession, cell: Code, *, execution_count: int,
                       silent: bool, store_history: bool, user_expressions: dict[str, Any],
                       allow_stdin: bool,
                       on_start: Callable[[CellRun | None], None]) -> Outcome:
        run = await session.run(cell.body, lang=cell.lang,
                                execution_count=None if silent else execution_count,
                                allow_stdin=allow_stdin, silent=silent,
                                store_history=store_history, user_expressions=user_expressions)
        on_start(run)
        if self.comms is not None:
            self.comms.watch(session)
        state = _CellState.fresh(session.limits)
        input_task: asyncio.Task[None] | None = None
        try:
            async for frame in run.events():
                if frame["type"] == "input_request":
                    if input_task is not None:
                        input_task.cancel()
                    input_task = asyncio.ensure_future(self._answer_input(run, frame))
                    continue
                self._publish_frame(frame, state, silent, execution_count)
                await self.frontend.iopub_room()
        finally:
            on_start(None)
            if input_task is not None:
                input_task.cancel()
            if self.comms is not None:
                self.comms.flush_notice()
        if run.result is None:
            raise SessionGone("the sandbox ended the cell without a result")
        if run.result.state_lost and self.comms is not None:
            self.comms.interpreter_lost()
        return self._finish(session.limits, run.result, run.done or {}, state)

    async def relay(self, session: AsyncSession, call: Call) -> None:
        """The output and comm frames of a widget's handler, published as a cell's are."""
        state = _CellState.fresh(session.limits)
        try:
            async for frame in call.frames(session.limits.timeout + 10):
                if frame["type"] == "reply":
                    if frame["status"] != "ok":
                        self._stream("stderr", "[sandbox] the widget's handler failed: "
                                     f"{clean_text(frame.get('message'), 500)}\n")
                    return
                if frame["type"] in _RELAYED:
                    self._publish_frame(frame, state, False, 0)
                    await self.frontend.iopub_room()
        except SandboxError as exc:
            self._stream("stderr", f"[sandbox] the widget's handler: {exc}\n")
        finally:
            session.channel.forget(call)

    def _publish_frame(self, frame: dict[str, Any], state: _CellState, silent: bool,
                       count: int) -> None:
        ftype = frame["type"]
        if ftype == "error":
            state.error = self._error_content(frame, state.budget)
            if not silent:
                self.frontend.publish("error", state.error)
        elif ftype == "payload":
            if frame["source"] == "page":
                self._page(frame, state)
            elif frame["source"] == "ask_exit":  # `exit`: a console leaves, as ipykernel's
                state.payload.append({"source": "ask_exit",
                                      "keepkernel": frame.get("keepkernel") is True})
        elif ftype.startswith("comm_"):
            if self.comms is not None:
                self.comms.from_sandbox(frame)
        elif not silent:
            {"stream": self._text, "notice": self._text, "display": self._rich,
             "result": self._rich, "clear": self._clear}[ftype](frame, state, count)

    def _text(self, frame: dict[str, Any], state: _CellState, count: int) -> None:
        if frame["type"] == "notice":
            self._stream("stderr", clean_text(frame["text"]) + "\n")
            return
        text = state.budget.take_text(clean_text(frame["text"]))
        if text:
            self._stream(frame["name"], text)

    def _clear(self, frame: dict[str, Any], state: _CellState, count: int) -> None:
        self.frontend.publish("clear_output", {"wait": frame["wait"]})

    def _rich(self, frame: dict[str, Any], state: _CellState, count: int) -> None:
        """display_data, update_display_data or execute_result: cleaned, then counted."""
        data, view = frame["data"], None
        if self.comms is not None:
            data, view = self.comms.split_view(data)
        out = self.policy.clean(data, frame["metadata"])
        if view is not None:
            out = CleanOutput({**out.data, **view}, out.metadata, out.notes, out.size + 100)
        shown = bool(out.data) and state.budget.admit(out.size)
        if shown and frame["type"] == "result":
            self.frontend.publish("execute_result", {"execution_count": count,
                                                     "data": out.data,
                                                     "metadata": out.metadata})
            plain = out.data.get("text/plain")
            state.result_text = plain if isinstance(plain, str) else ""
        elif shown:
            display_id = frame["transient"].get("display_id")
            content: dict[str, Any] = {"data": out.data, "metadata": out.metadata,
                                       "transient": {}}
            if isinstance(display_id, str):
                content["transient"] = {"display_id": clean_text(display_id, 200)}
            update = frame["update"] is True and isinstance(display_id, str)
            self.frontend.publish("update_display_data" if update else "display_data", content)
        notice = state.budget.notice(out.notes) if shown or not out.data else None
        if notice:
            self._stream("stderr", notice + "\n")

    def _page(self, frame: dict[str, Any], state: _CellState) -> None:
        out = self.policy.clean(frame.get("data"))
        if out.data and state.budget.admit(out.size):
            state.payload.append({"source": "page", "data": with_notice(out),
                                  "start": frame.get("start", 0)})

    @staticmethod
    def _error_content(frame: dict[str, Any], budget: OutputBudget) -> dict[str, Any]:
        ename = clean_text(frame["ename"], 200) or "Error"
        evalue = clean_text(frame["evalue"], 100_000)
        lines = [clean_text(x, 100_000) for x in frame["traceback"][-1000:]]
        return {"ename": ename, "evalue": evalue,
                "traceback": budget.error(ename, evalue, lines)}

    async def _answer_input(self, run: CellRun, frame: dict[str, Any]) -> None:
        """Forward an input() from the sandbox to the frontend and its answer back. If the
        frontend cannot be asked, the cell's input() gets end of file instead of waiting."""
        try:
            value = await self.frontend.ask(clean_text(frame["prompt"], 10_000),
                                            frame["password"])
        except Exception as exc:  # noqa: BLE001 - a failed ask must not leave input() hanging
            self._stream("stderr", "[sandbox] could not ask the frontend for input "
                                   f"({type(exc).__name__}: {str(exc)[:300]}); "
                                   "input() gets end of file\n")
            value = None
        await run.send_input("\x04" if value is None else value)

    def _finish(self, limits: Limits, result: CellResult, frame: dict[str, Any],
                state: _CellState) -> Outcome:
        budget = state.budget
        budget.undelivered += self.frontend.iopub_lost()
        budget.dropped_outputs += result.dropped_outputs
        dropped = budget.dropped_chars + result.dropped_chars
        lines = budget.summary(result.dropped_chars, raise_hint(limits, self.ceilings, dropped))
        if lines:
            self._stream("stderr", "\n" + "\n".join(lines) + "\n")
        verdict = {"cpu_time": "timeout", "crashed": "error"}.get(result.verdict, result.verdict)
        acct: dict[str, Any] = {
            "verdict": verdict, "wall_seconds": round(result.duration_ms / 1000, 4),
            "cpu_seconds": result.cpu_seconds, "peak_memory": result.peak_memory}
        if verdict != result.verdict:
            acct["reason"] = result.verdict
        if result.state_lost:
            ename, evalue = lost_error(limits, self.ceilings, self.grace, result)
            return self._error(ename, evalue, verdict, **{k: v for k, v in acct.items()
                                                           if k != "verdict"})
        reply: dict[str, Any] = {"status": "ok", "payload": state.payload,
                                 "user_expressions": self._clean_expressions(
                                     frame.get("user_expressions"))}
        if state.error is not None or result.verdict != "ok":
            ename = VERDICT_ERRORS.get(result.verdict, "SandboxError")  # no traceback came
            err = state.error or error_content(ename, result.message or result.verdict)
            reply.update(status="error", **err)
        return Outcome(reply, acct, state.result_text)

    def _clean_expressions(self, raw: Any) -> dict[str, Any]:
        if not isinstance(raw, dict):
            return {}
        out: dict[str, Any] = {}
        for key, value in list(raw.items())[:100]:
            if not isinstance(key, str) or not isinstance(value, dict):
                continue
            if value.get("status") == "ok":
                clean = self.policy.clean(value.get("data"), value.get("metadata"))
                out[key] = {"status": "ok", "data": with_notice(clean),
                            "metadata": clean.metadata}
            else:
                out[key] = {"status": "error", "ename": clean_text(value.get("ename"), 200),
                            "evalue": clean_text(value.get("evalue"), 10_000), "traceback": []}
        return out
