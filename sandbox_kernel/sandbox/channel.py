"""Framed NDJSON requests and events over an agent's attached stdio.

One reader thread splits the agent's stdout into frames, validates each (size, JSON shape,
known type) and routes it to the Call that owns its id. Anything invalid closes the
channel: a sandbox that breaks protocol is no longer trusted.
"""

from __future__ import annotations

import itertools
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from ..agent import protocol
from ..errors import SandboxTimeout, SessionGone
from .backend import AgentStream

log = logging.getLogger(__name__)

Frame = dict[str, Any]
#: Frame types that end a call ("closed" is synthesized when the channel dies).
TERMINAL = frozenset({"done", "reply", "hello"})
CLOSED_TYPE = "closed"
_CLOSED: Frame = {"id": -1, "type": "closed"}
_MAX_LOG_LINE = 1000


class Call:
    """One request in flight: its frames arrive on a queue, or at a callback if given."""

    def __init__(self, channel: Channel, cid: int,
                 on_frame: Callable[[Frame], None] | None = None) -> None:
        self.channel = channel
        self.id = cid
        self.on_frame = on_frame
        self.queue: queue.SimpleQueue[Frame] = queue.SimpleQueue()
        self.finished = threading.Event()
        self.final: Frame | None = None

    def deliver(self, frame: Frame) -> None:
        terminal = frame["type"] in TERMINAL or frame is _CLOSED
        if terminal:
            self.final = frame
        if self.on_frame is not None:
            try:
                self.on_frame(dict(frame) if frame is _CLOSED else frame)
            except Exception:  # a consumer bug must not kill the reader thread
                log.exception("event callback failed")
        else:
            self.queue.put(frame)
        if terminal:
            self.finished.set()

    def frames(self, timeout: float | None = None) -> Iterator[Frame]:
        """Yield frames up to and including the terminal one (queue mode only)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                frame = self.queue.get(timeout=remaining)
            except queue.Empty:
                raise SandboxTimeout(
                    f"the sandbox did not answer within {timeout:g} s") from None
            if frame is _CLOSED:
                raise SessionGone(self.channel.close_reason())
            yield frame
            if frame["type"] in TERMINAL:
                return

    def wait(self, timeout: float | None = None) -> Frame:
        """Block until the terminal frame; raise SessionGone if the channel closed first."""
        if self.on_frame is None:
            final: Frame = {}
            for frame in self.frames(timeout):
                final = frame
            return final
        if not self.finished.wait(timeout):
            raise SandboxTimeout(f"the sandbox did not answer within {timeout:g} s")
        if self.final is _CLOSED or self.final is None:
            raise SessionGone(self.channel.close_reason())
        return self.final


class Channel:
    """Requests down, events up, over one AgentStream; thread-safe."""

    def __init__(self, stream: AgentStream, name: str = "sandbox",
                 on_close: Callable[[str], None] | None = None) -> None:
        self.stream = stream
        self.name = name
        self.on_close = on_close
        self._ids = itertools.count(1)
        self._calls: dict[int, Call] = {}
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._closed = threading.Event()
        self._reason = "the sandbox is closed"
        self._reader = threading.Thread(target=self._read, name=f"{name}-reader", daemon=True)

    def start(self) -> Channel:
        self._reader.start()
        return self

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    def close_reason(self) -> str:
        return self._reason

    def call(self, ftype: str, on_frame: Callable[[Frame], None] | None = None,
             **fields: Any) -> Call:
        """Send a request and return its Call; frames for it start arriving at once."""
        cid = next(self._ids)
        call = Call(self, cid, on_frame)
        with self._lock:
            if self.closed:
                raise SessionGone(self._reason)
            self._calls[cid] = call
        try:
            self.send({"id": cid, "type": ftype, **fields})
        except BaseException:
            with self._lock:
                self._calls.pop(cid, None)
            raise
        return call

    def request(self, ftype: str, timeout: float = 30.0, **fields: Any) -> Frame:
        """Send a request and wait for its terminal frame."""
        call = self.call(ftype, **fields)
        try:
            return call.wait(timeout)
        finally:
            self.forget(call)

    def send(self, frame: Frame) -> None:
        data = protocol.encode(frame)
        with self._write_lock:
            if self.closed:
                raise SessionGone(self._reason)
            self.stream.send(data)

    def forget(self, call: Call) -> None:
        with self._lock:
            self._calls.pop(call.id, None)

    def close(self, reason: str = "the sandbox was closed") -> None:
        self._shutdown(reason)
        self.stream.close()
        if self._reader.is_alive() and threading.current_thread() is not self._reader:
            self._reader.join(timeout=2)

    def _shutdown(self, reason: str) -> None:
        with self._lock:
            if self._closed.is_set():
                return
            self._reason = reason
            self._closed.set()
            calls = list(self._calls.values())
            self._calls.clear()
        for call in calls:
            call.deliver(_CLOSED)
        if self.on_close is not None:
            try:
                self.on_close(reason)
            except Exception:
                log.exception("on_close callback failed")

    def _route(self, line: bytes) -> None:
        frame = protocol.decode(line, protocol.EVENT_TYPES)
        with self._lock:
            call = self._calls.get(frame["id"])
            if call is not None and frame["type"] in TERMINAL:
                del self._calls[frame["id"]]
        if call is not None:
            call.deliver(frame)

    def _read(self) -> None:
        frames = protocol.LineBuffer()
        errbuf = bytearray()
        reason = "the sandbox container stopped"
        try:
            for stream, chunk in self.stream.frames():
                if stream == 2:
                    errbuf += chunk
                    *lines, rest = errbuf.split(b"\n")
                    errbuf = bytearray(rest[:_MAX_LOG_LINE])
                    for raw in lines:
                        text = raw[:_MAX_LOG_LINE].decode("utf-8", "replace")
                        log.debug("%s agent: %s", self.name, text.encode("unicode_escape")
                                  .decode("ascii"))
                    continue
                for line in frames.feed(chunk):
                    self._route(line)
        except protocol.FrameError as exc:
            reason = f"the sandbox broke protocol ({exc}) and was disconnected"
            log.warning("%s: %s", self.name, reason)
            self._shutdown(reason)
            self.stream.close()
        finally:
            self._shutdown(reason)
