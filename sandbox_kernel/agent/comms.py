"""The agent's relay for comm messages between the host and the Python interpreter.

A frontend's comm message goes to the interpreter as a request of its own; what its handler
produces (comm frames, output) comes back on the reply pipe under that request's token and
goes to the host under the host's id, then the reply. Comm frames the interpreter sends
between cells (a thread updating a widget) go to the host with id 0. Comm frames of a
running cell are the cell's (cells.py). The host validates all of them again.
"""

from __future__ import annotations

import signal
from collections.abc import Callable

from .frames import Frame, FrameError, check_fields
from .loop import Loop, Timer
from .protocol import COMM_EVENTS, OUTPUT_EVENTS, REPLIES
from .spawn import new_token
from .workers import Worker

#: Seconds after the interrupt a handler that ran past its timeout has to answer.
_GRACE = 3.0
_FORWARDED = frozenset(COMM_EVENTS) | frozenset(OUTPUT_EVENTS) - {"input_request"}


class _Pending:
    __slots__ = ("rid", "rtype", "timer", "worker")

    def __init__(self, rid: int, rtype: str, worker: Worker, timer: Timer) -> None:
        self.rid, self.rtype, self.worker, self.timer = rid, rtype, worker, timer


class CommRelay:
    """Host comm requests to a worker, and the worker's comm frames back."""

    def __init__(self, loop: Loop, send: Callable[[Frame], None],
                 fail: Callable[[int, str, str], None], reply: Callable[..., None],
                 busy: Callable[[Worker], bool]) -> None:
        self.send = send
        self.busy = busy
        self.fail = fail
        self.reply = reply
        self.loop = loop
        self.pending: dict[int, _Pending] = {}

    def start(self, req: Frame, worker: Worker) -> None:
        """Forward one host request (comm_open/msg/close/info) to the worker."""
        token = new_token()
        timeout = float(req.get("timeout", 20.0))
        timer = self.loop.call_later(timeout, self._overdue, token, timeout)
        self.pending[token] = _Pending(req["id"], req["type"], worker, timer)
        fields = {k: v for k, v in req.items() if k not in ("id", "timeout")}
        worker.send({**fields, "id": token})

    def owns(self, frame: Frame) -> bool:
        return frame["id"] in self.pending or (frame["id"] == 0 and
                                               frame["type"] in COMM_EVENTS)

    def on_frame(self, worker: Worker, frame: Frame) -> None:
        entry = self.pending.get(frame["id"])
        if entry is None:
            if frame["id"] == 0 and frame["type"] in COMM_EVENTS:
                self.send(frame)
            return
        if entry.worker is not worker:
            return
        if frame["type"] == "reply":
            self._answer(frame["id"], entry, frame)
        elif frame["type"] in _FORWARDED:
            self.send({**frame, "id": entry.rid})

    def _answer(self, token: int, entry: _Pending, frame: Frame) -> None:
        del self.pending[token]
        entry.timer.cancel()
        if frame["status"] != "ok":
            self.fail(entry.rid, frame.get("code", "EWORKER"), frame.get("message", "failed"))
            return
        body = frame.get("body") or {}
        try:
            check_fields(f"{entry.rtype} reply", REPLIES[entry.rtype], body, envelope=())
        except FrameError as exc:
            self.fail(entry.rid, "EPROTO", f"the interpreter answered badly ({exc})")
            return
        self.reply(entry.rid, **body)

    def _overdue(self, token: int, timeout: float) -> None:
        """Past its timeout the handler is interrupted (not a cell that runs before it);
        past the grace, the host is told."""
        entry = self.pending.get(token)
        if entry is None:
            return
        if self.busy(entry.worker):
            entry.timer = self.loop.call_later(timeout, self._overdue, token, timeout)
            return
        if timeout:
            entry.worker.signal(signal.SIGINT)
            entry.timer = self.loop.call_later(_GRACE, self._overdue, token, 0.0)
            return
        del self.pending[token]
        self.fail(entry.rid, "ETIMEDOUT", "the widget's handler did not finish in time")

    def interrupt(self, target: int | None) -> bool:
        """SIGINT a widget's handler that runs (not a cell it waits behind)."""
        for entry in self.pending.values():
            if (target is None or entry.rid == target) and not self.busy(entry.worker):
                entry.worker.signal(signal.SIGINT)
                return True
        return False

    def worker_gone(self, worker: Worker) -> None:
        for token, entry in list(self.pending.items()):
            if entry.worker is worker:
                entry.timer.cancel()
                del self.pending[token]
                self.fail(entry.rid, "EPIPE", "the Python interpreter restarted")
