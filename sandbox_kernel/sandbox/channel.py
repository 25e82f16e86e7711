"""Contract frames over an agent's attached stdio, on one asyncio event loop.

One reader task splits the agent's stdout into frames, checks each against the contract
(replies against the request they answer) and routes it to the Call that owns its id.
Anything invalid closes the channel: a sandbox that breaks protocol is not trusted again.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import AsyncIterator
from typing import Any

from ..agent.frames import Frame, FrameError, FrameReader, check_fields, encode, encode_chunk
from ..agent.protocol import AGENT_EVENTS, REPLIES
from ..errors import SandboxTimeout, SessionGone
from .backend import AgentStream

log = logging.getLogger(__name__)

#: Frame types that end a call; "closed" is made up here when the channel dies.
TERMINAL = frozenset({"done", "reply", "hello", "exited"})
#: Frames queued for one call before the reader waits for its consumer (back-pressure);
#: a read's frames are chunks of up to 1 MiB, so it gets few.
_QUEUE_FRAMES, _QUEUE_CHUNKS = 64, 4
_MAX_LOG_LINE = 1000


class Call:
    """One request in flight: its frames, in order, ending with a terminal one."""

    def __init__(self, channel: Channel, cid: int, rtype: str) -> None:
        self.channel = channel
        self.id = cid
        self.type = rtype
        self.queue: asyncio.Queue[Frame] = asyncio.Queue(
            _QUEUE_CHUNKS if rtype == "read" else _QUEUE_FRAMES)
        self.final: Frame | None = None

    async def next(self, timeout: float | None = None) -> Frame:
        """The next frame; SandboxTimeout after `timeout`, SessionGone if the channel died."""
        if timeout is None or not self.queue.empty():
            frame = await self.queue.get()  # returns at once when a frame is waiting
        else:
            frame = await _get_within(self.queue, timeout)
        if frame["type"] == "closed":
            raise SessionGone(self.channel.close_reason())
        if frame["type"] in TERMINAL:
            self.final = frame
        return frame

    async def frames(self, timeout: float | None = None) -> AsyncIterator[Frame]:
        """Frames up to and including the terminal one, all within `timeout` seconds."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while True:
            left = None if deadline is None else max(0.0, deadline - loop.time())
            try:
                frame = await self.next(left)
            except SandboxTimeout:
                raise SandboxTimeout(f"the sandbox did not answer within {timeout:g} s") \
                    from None
            yield frame
            if frame["type"] in TERMINAL:
                return

    async def result(self, timeout: float | None = None) -> Frame:
        """The terminal frame (anything before it is discarded)."""
        final: Frame = {}
        async for frame in self.frames(timeout):
            final = frame
        return final


class Channel:
    """Requests down, events up, over one AgentStream. Use from one event loop only."""

    def __init__(self, stream: AgentStream, name: str = "sandbox") -> None:
        self.stream = stream
        self.name = name
        self._ids = itertools.count(1)
        self._calls: dict[int, Call] = {}
        self._reason = "the sandbox is closed"
        self.closed = False
        self.broken = False  # closed because the agent broke the contract
        self._reader: asyncio.Task[None] | None = None
        self._write_lock = asyncio.Lock()
        self.on_close: list[Any] = []
        #: Called with frames the agent sends under id 0 (a widget's, between cells).
        self.listeners: list[Any] = []

    def start(self, stream: AgentStream | None = None) -> Channel:
        """Begin reading; `stream` replaces the one given at construction (the direct link)."""
        self.stream = stream or self.stream
        self._reader = asyncio.get_running_loop().create_task(self._read())
        return self

    def close_reason(self) -> str:
        return self._reason

    async def call(self, rtype: str, **fields: Any) -> Call:
        """Send a request; its frames start arriving on the returned Call at once."""
        if self.closed:
            raise SessionGone(self._reason)
        call = Call(self, next(self._ids), rtype)
        self._calls[call.id] = call
        try:
            await self.send(encode({"id": call.id, "type": rtype, **fields}))
        except BaseException:
            self._calls.pop(call.id, None)
            raise
        return call

    async def request(self, rtype: str, timeout: float = 30.0, **fields: Any) -> Frame:
        """Send a request and return its terminal frame."""
        call = await self.call(rtype, **fields)
        try:
            return await call.result(timeout)
        finally:
            self.forget(call)

    async def send(self, data: bytes) -> None:
        async with self._write_lock:
            if self.closed:
                raise SessionGone(self._reason)
            await self.stream.write(data)

    async def send_chunk(self, cid: int, data: bytes) -> None:
        """A chunk header and its bytes, written back to back (never joined: a copy per MiB)."""
        async with self._write_lock:
            if self.closed:
                raise SessionGone(self._reason)
            await self.stream.write(encode_chunk(cid, data))
            await self.stream.write(data)

    def forget(self, call: Call) -> None:
        self._calls.pop(call.id, None)

    def close(self, reason: str = "the sandbox was closed") -> None:
        self._shutdown(reason)
        self.stream.close()

    async def aclose(self, reason: str = "the sandbox was closed") -> None:
        """Close, and wait for the reader task to end."""
        self.close(reason)
        reader = self._reader
        if reader is not None and reader is not asyncio.current_task() and not reader.done():
            reader.cancel()
            try:
                await reader
            except (asyncio.CancelledError, Exception):  # noqa: BLE001 - it is going away
                pass

    def _shutdown(self, reason: str) -> None:
        if self.closed:
            return
        self._reason = reason
        self.closed = True
        calls = list(self._calls.values())
        self._calls.clear()
        for call in calls:
            _put_closing(call)
        for callback in self.on_close:
            try:
                callback(reason)
            except Exception:
                log.exception("on_close callback failed")

    async def _route(self, frame: Frame) -> None:
        call = self._calls.get(frame["id"])
        if call is None:
            if frame["id"] == 0:
                for listener in list(self.listeners):
                    try:
                        listener(frame)
                    except Exception:
                        log.exception("a frame listener failed")
            return  # e.g. a reply to a request that timed out
        if frame["type"] == "reply" and frame["status"] == "ok":
            check_fields(f"{call.type} reply", REPLIES.get(call.type, {}),
                         frame.get("body") or {}, envelope=())
        if frame["type"] in TERMINAL:
            del self._calls[frame["id"]]
        await call.queue.put(frame)

    async def _read(self) -> None:
        frames = FrameReader(AGENT_EVENTS)
        errbuf = bytearray()
        reason = "the sandbox container stopped"
        try:
            while True:
                stream, chunk = await self.stream.read()
                if stream == 0:
                    break
                if stream == 2:
                    errbuf = self._log(errbuf + chunk)
                    continue
                try:
                    batch = frames.feed(chunk)
                except FrameError as exc:
                    for frame in exc.frames:  # what came before the bad frame still counts
                        await self._route(frame)
                    raise
                for frame in batch:
                    await self._route(frame)
        except FrameError as exc:
            reason = f"the sandbox broke protocol ({exc}) and was disconnected"
            log.warning("%s: %s", self.name, reason)
            self.broken = True
            self.stream.close()
        except asyncio.CancelledError:
            reason = "the sandbox was closed"
        except Exception as exc:  # the reader must never die silently
            reason = f"the sandbox connection failed ({type(exc).__name__}: {exc})"
            log.exception("%s: reader failed", self.name)
            self.stream.close()
        finally:
            self._shutdown(reason)

    def _log(self, buf: bytearray) -> bytearray:
        *lines, rest = buf.split(b"\n")
        for raw in lines:
            text = raw[:_MAX_LOG_LINE].decode("utf-8", "replace")
            log.debug("%s agent: %s", self.name, text.encode("unicode_escape").decode("ascii"))
        return bytearray(rest[:_MAX_LOG_LINE])


def _put_closing(call: Call) -> None:
    """Tell a waiting consumer the channel is gone, even if its queue is full."""
    while True:
        try:
            call.queue.put_nowait({"id": call.id, "type": "closed"})
            return
        except asyncio.QueueFull:
            call.queue.get_nowait()


async def _get_within(queue: asyncio.Queue[Frame], timeout: float) -> Frame:
    """queue.get() with a deadline, as a timer on this task (wait_for would start another
    task for every frame)."""
    task = asyncio.current_task()
    assert task is not None
    expired = False

    def expire() -> None:
        nonlocal expired
        expired = True
        task.cancel()

    timer = asyncio.get_running_loop().call_later(timeout, expire)
    try:
        return await queue.get()
    except asyncio.CancelledError:
        if not expired:
            raise
        if hasattr(task, "uncancel"):  # 3.11+: this cancel was ours, not the caller's
            task.uncancel()
        raise SandboxTimeout(f"the sandbox did not answer within {timeout:g} s") from None
    finally:
        timer.cancel()
