"""The agent's link to the host: requests from stdin, frames to stdout, with back-pressure.

Writes never block the loop: stdout is non-blocking, unsent bytes wait in a queue (never
copied into one buffer), and while the queue is above the high-water mark the link is
"paused", which stops the agent reading worker output (so a fast producer waits instead of
filling memory) until the host catches up. Once the pipe is full, the link lets it drain
for a moment before writing again (the pipe says writable as soon as one page is free, and
topping it up a page at a time cost a wakeup per 32 KiB the engine read); a read that ends
inside a chunk likewise lets stdin fill before the next one.
"""

from __future__ import annotations

import fcntl
import os
import socket
import sys
from collections import deque
from collections.abc import Callable
from typing import Any

from .frames import Frame, FrameError, FrameReader, encode, encode_chunk, encode_stream
from .loop import Event, Loop
from .protocol import HOST_REQUESTS, error_body
from .spawn import widen

_HIGH_WATER = 4 * 1024 * 1024
_LOW_WATER = 1024 * 1024
#: After a write that filled the pipe, wait this long before waiting for it to be writable,
#: and after a read that ended inside a chunk, before reading again (only with pipes of at
#: least _WIDE bytes, which hold several milliseconds of a transfer).
_SETTLE_S, _WIDE = 0.001, 1 << 20
_IOV = 64  # buffers per writev
_SOCK_BUFFER = 4 * 1024 * 1024  # capped by the kernel's wmem_max/rmem_max
_READ = 64 * 1024  # per read of stdin outside a chunk (a chunk's bytes are read in place)


class HostLink:
    """Frames to and from the host over the agent's stdio."""

    def __init__(self, loop: Loop, on_request: Callable[[Frame], None], on_eof: Callable[[], None],
                 log: Callable[[str], None]) -> None:
        self.loop = loop
        self.on_request = on_request
        self.on_eof = on_eof
        self.log = log
        self.reader = FrameReader(HOST_REQUESTS, reuse=True)
        self.outbox: deque[bytes | memoryview] = deque()
        self.queued = 0  # bytes in the outbox
        self.settle = self.in_settle = 0.0
        self._waiting = False  # a writer or a settle timer is armed
        self.paused = False
        self.listeners: list[Callable[[bool], None]] = []
        self._resumed = Event()
        self._resumed.set()
        self.closed = False
        self.in_fd, self.out_fd = 0, 1
        self.sock: socket.socket | None = None  # the direct link, once switched

    @property
    def linked(self) -> bool:
        return self.sock is not None

    def open(self) -> None:
        for fd in (0, 1):  # 1 MiB pipes: a transfer hands over 16 times less often
            widen(fd)
            os.set_blocking(fd, False)
        self.in_settle, self.settle = (_SETTLE_S if _wide(fd) else 0.0 for fd in (0, 1))
        self.loop.add_reader(0, self._on_stdin)

    def set_paused(self, paused: bool) -> None:
        self.paused = paused
        if paused:
            self._resumed.clear()
        else:
            self._resumed.set()
        for listener in list(self.listeners):
            listener(paused)

    def lost(self) -> None:
        if not self.closed:
            self.closed = True
            self._resumed.set()
            self.on_eof()

    async def drain(self) -> None:
        """Wait until the host has taken what was written (for transfers)."""
        await self._resumed.wait()

    def _on_stdin(self) -> None:
        room = self.reader.room()  # a chunk's bytes go straight where they are used
        data: bytes | None = None
        fd = self.in_fd
        try:
            if room is not None:
                got = os.readv(fd, [room])
            else:
                data = os.read(fd, _READ)
                got = len(data)
        except BlockingIOError:
            return
        except OSError:
            got = 0
        if not got:
            self.loop.remove_reader(fd)
            self.lost()
            return
        try:
            frames = self.reader.feed(data) if data is not None else self.reader.filled(got)
        except FrameError as exc:
            # A bad request is the host's bug: the valid ones before it are served, and
            # the reader starts over.
            self.log(f"invalid request from the host: {exc}")
            self.reader = FrameReader(HOST_REQUESTS, reuse=True)
            frames = exc.frames
        for frame in frames:
            self.on_request(frame)
        if self.in_settle and self.reader.pending is not None and not self.closed:
            # In the middle of a chunk: let the pipe fill instead of waking per 32 KiB.
            self.loop.remove_reader(fd)
            self.loop.call_later(self.in_settle, self._rearm)

    def _rearm(self) -> None:
        if not self.closed:
            self.loop.add_reader(self.in_fd, self._on_stdin)

    def take_link(self, req: Frame) -> None:
        """Connect the host's socket (sandbox/direct.py) and move there; the reply is the
        last frame on stdout."""
        try:
            sock = connect_link(req["path"], req["token"], self.linked)
        except OSError as exc:
            self.fail(req["id"], "unavailable", f"no direct link: {exc}")
            return
        self.reply(req["id"])
        self.switch(sock)

    def switch(self, sock: socket.socket) -> None:
        """From now on, frames go both ways on `sock`; stdin only says when the host left.

        What stdout still holds is written out first (blocking: it is the link reply)."""
        os.set_blocking(1, True)
        try:
            while self.outbox:
                part = memoryview(self.outbox.popleft())
                while part:
                    part = part[os.write(1, part):]
        except OSError:
            self.outbox.clear()
        os.set_blocking(1, False)
        self.loop.remove_writer(1)
        self._waiting, self.queued = False, 0
        self.loop.remove_reader(0)
        sock.setblocking(False)
        self.sock, self.in_fd, self.out_fd = sock, sock.fileno(), sock.fileno()
        self.in_settle = self.settle = 0.0
        self.loop.add_reader(0, self._on_stdin_after_switch)
        self.loop.add_reader(self.in_fd, self._on_stdin)

    def _on_stdin_after_switch(self) -> None:
        try:
            data = os.read(0, _READ)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if data:
            self.log(f"ignored {len(data)} bytes on stdin after the link moved")
            return
        self.loop.remove_reader(0)
        self.lost()

    def send(self, frame: Frame) -> None:
        self.write(encode_stream(frame) if frame["type"] == "stream" else encode(frame))

    def write(self, *parts: bytes) -> None:
        """Queue `parts` for stdout, in order; what the pipe takes now is written at once."""
        if self.closed:
            return
        if not self.outbox:
            sent = self._write(parts)
            for part in parts:
                if sent >= len(part):
                    sent -= len(part)
                    continue
                self.outbox.append(memoryview(part)[sent:] if sent else part)
                self.queued += len(part) - sent
                sent = 0
            if self.outbox and not self._waiting:
                self._wait()
        else:
            self.outbox.extend(parts)
            self.queued += sum(len(p) for p in parts)
        if not self.paused and self.queued > _HIGH_WATER:
            self.set_paused(True)

    def _write(self, parts: tuple[bytes | memoryview, ...] | list[bytes | memoryview]) -> int:
        try:
            return os.writev(self.out_fd, parts)
        except BlockingIOError:
            return 0
        except OSError:
            self._drop()
            return sum(len(p) for p in parts)

    def _drop(self) -> None:
        self.loop.remove_writer(self.out_fd)
        self.outbox.clear()
        self.queued = 0
        self.lost()

    def _wait(self) -> None:
        """The pipe is full: let it drain a little, then wait until it takes more."""
        self._waiting = True
        if self.settle:
            self.loop.remove_writer(self.out_fd)
            self.loop.call_later(self.settle, self._arm)
        else:
            self._arm()

    def _arm(self) -> None:
        if self.outbox and not self.closed:
            self.loop.add_writer(self.out_fd, self._on_writable)
        else:
            self._waiting = False

    def _on_writable(self) -> None:
        out = self.outbox
        sent = self._write([out[i] for i in range(min(len(out), _IOV))])
        if self.closed:
            return
        self.queued -= sent
        while sent and out:
            head = out[0]
            if sent >= len(head):
                sent -= len(head)
                out.popleft()
            else:
                out[0] = memoryview(head)[sent:]
                sent = 0
        if not out:
            self.loop.remove_writer(self.out_fd)
            self._waiting = False
        elif self.settle:
            self._wait()
        if self.paused and self.queued < _LOW_WATER:
            self.set_paused(False)

    def send_chunk(self, fid: int, data: bytes) -> None:
        self.write(encode_chunk(fid, data), data)

    def reply(self, fid: int, **body: Any) -> None:
        self.send({"id": fid, "type": "reply", "status": "ok", "body": body})

    def fail(self, fid: int, code: str, message: str) -> None:
        self.send({"id": fid, "type": "reply", "status": "error", **error_body(code, message)})


def connect_link(path: str, token: str, linked: bool) -> socket.socket:
    """The direct link to the host (sandbox/direct.py), token sent; OSError if not possible."""
    if linked:
        raise OSError("the link has already moved")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(2.0)
        for opt in (socket.SO_SNDBUF, socket.SO_RCVBUF):
            sock.setsockopt(socket.SOL_SOCKET, opt, _SOCK_BUFFER)
        sock.connect(path)
        sock.sendall(token.encode("ascii") + b"\n")
    except (OSError, UnicodeError) as exc:
        sock.close()
        raise OSError(str(exc)) from None
    return sock


def _wide(fd: int) -> bool:
    """Whether the pipe on `fd` holds at least _WIDE bytes."""
    try:
        return int(fcntl.fcntl(fd, fcntl.F_GETPIPE_SZ)) >= _WIDE
    except OSError:
        return False


def log(message: str) -> None:
    """One line on the agent's stderr (the host logs it at debug level)."""
    try:
        sys.stderr.write(message.replace("\n", " ")[:2000] + "\n")
        sys.stderr.flush()
    except OSError:
        pass
