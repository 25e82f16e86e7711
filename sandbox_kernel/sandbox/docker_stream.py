"""Reading Docker's multiplexed attach stream from a plain or TLS socket without hanging.

The stream is frames of an 8-byte header (stream 0/1/2, three zero bytes, big-endian
length) and a payload. docker-py's frames_iter waits with select/poll before every read;
over TLS the first read decrypts a whole record, and the bytes after the first frame then
sit in the TLS layer where select never sees them, so the reader hangs with data in hand.
Here nothing waits on the file descriptor while the TLS layer holds decrypted bytes:

- `FrameSplitter`: sans-IO; feed any chunks, get whole frames (for threads or asyncio).
- `iter_frames(sock)`: a blocking reader that calls recv() straight away (SSLSocket.recv
  returns buffered bytes first) and yields frames until EOF.
- `recv_available_into(sock, buf)`: for non-blocking sockets and event loops: everything
  readable now, TLS-buffered bytes included (`pending()`), so a loop's reader callback must
  call it until it returns None; no second readiness event comes for decrypted bytes.
- `DockerAttachStream`: the AgentStream over such a socket, on the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import select
import socket
import ssl
import struct
import threading
from collections.abc import Iterator
from typing import Any, Protocol

from .backend import AgentStream
from .sockets import send_all

HEADER = struct.Struct(">BxxxL")
STREAMS = (0, 1, 2)  # stdin, stdout, stderr
MAX_FRAME = 64 * 1024 * 1024
CHUNK = 256 * 1024
_MAX_PARTS = 4  # at most 1 MiB per call, so a fast sender cannot starve the loop
Payload = bytes | memoryview


class RecvSocket(Protocol):
    def recv(self, bufsize: int, /) -> bytes: ...

    def fileno(self) -> int: ...


class FrameSplitter:
    """Whole (stream, payload) frames out of a multiplexed byte stream fed in pieces."""

    def __init__(self, max_frame: int = MAX_FRAME) -> None:
        self._buf = bytearray()
        self._need = HEADER.size  # bytes the held-back frame needs in all
        self._max = max_frame

    @property
    def buffered(self) -> int:
        """Bytes of an incomplete frame held back."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        """Frames completed by `data`; ValueError if the bytes are not a multiplexed stream.

        Each payload is copied once; an incomplete frame is held until it can complete.
        """
        return [(stream, bytes(p)) for stream, p in self.views(data)]

    def views(self, data: bytes | bytearray | memoryview) -> list[tuple[int, Payload]]:
        """As `feed`, with payloads as views of `data` where they lie whole in it (valid
        while `data` is unchanged): a reader that reuses its buffer copies only once."""
        view, pos, n = memoryview(data), 0, len(data)
        frames: list[tuple[int, Payload]] = []
        while self._buf:  # the held-back frame first, taking only what completes it
            take = min(self._need - len(self._buf), n - pos)
            self._buf += view[pos : pos + take]
            pos += take
            if len(self._buf) < self._need:
                return frames
            if len(self._buf) == HEADER.size:
                self._need = HEADER.size + self._header(self._buf, 0)[1]
                if self._need > HEADER.size:
                    continue
            frames.append((self._buf[0], bytes(self._buf[HEADER.size :])))
            self._buf, self._need = bytearray(), HEADER.size
        while n - pos >= HEADER.size:
            stream, size = self._header(view, pos)
            end = pos + HEADER.size + size
            if end > n:
                self._need = end - pos
                break
            frames.append((stream, view[pos + HEADER.size : end]))
            pos = end
        if pos < n:
            self._buf = bytearray(view[pos:])
        return frames

    def _header(self, data: bytes | bytearray | memoryview, pos: int) -> tuple[int, int]:
        stream, size = HEADER.unpack_from(data, pos)
        if stream not in STREAMS or bytes(data[pos + 1 : pos + 4]) != b"\0\0\0":
            raise ValueError(f"not a multiplexed attach stream (header "
                             f"{bytes(data[pos : pos + HEADER.size]).hex()})")
        if size > self._max:
            raise ValueError(f"attach frame of {size} bytes is over {self._max}")
        return int(stream), int(size)


def _pending(sock: object) -> int:
    """Decrypted bytes the TLS layer holds (0 for plain sockets)."""
    pending = getattr(sock, "pending", None)
    return int(pending()) if callable(pending) else 0


def iter_frames(sock: RecvSocket, initial: bytes = b"",
                chunk: int = CHUNK) -> Iterator[tuple[int, bytes]]:
    """Yield frames from a blocking socket until EOF, never waiting before a read.

    `initial`: bytes already read past the HTTP upgrade response (e.g. by a buffered
    reader), which belong to the stream. Ends quietly at EOF or a closed socket, including
    a TLS peer that closes without close_notify.
    """
    splitter = FrameSplitter()
    data = initial
    while True:
        if data:
            yield from splitter.feed(data)
        try:
            data = sock.recv(chunk)
        except (ssl.SSLZeroReturnError, ssl.SSLEOFError, ConnectionError):
            return
        except OSError:
            return
        if not data:
            return


def recv_available_into(sock: Any, buf: memoryview, chunk: int = CHUNK) -> int | None:
    """Everything readable now from a non-blocking socket, into `buf` (at most its size):
    bytes read, 0 at EOF, None if nothing. Reads while the TLS layer has decrypted bytes
    (`pending()`) or the descriptor is readable; a reused buffer spares an allocation (and
    its page faults) per read."""
    filled = 0
    while filled < len(buf) and (not filled or _pending(sock) or
                                 select.select([sock], [], [], 0)[0]):
        try:
            got = sock.recv_into(buf[filled : filled + chunk])
        except (ssl.SSLWantReadError, BlockingIOError, InterruptedError):
            break
        except (ssl.SSLZeroReturnError, ssl.SSLEOFError, ConnectionError):
            got = 0
        if not got:
            return filled  # 0: EOF; otherwise the next call sees EOF again
        filled += got
    return filled or None


#: Bytes read from the engine and not yet taken by the channel: above the high mark the
#: stream stops reading (the engine and the agent wait), below the low mark it reads again.
_HIGH_WATER, _LOW_WATER = 4 * 2**20, 2**20
_SEND_BUFFER = 2 * 2**20


def _runs(frames: list[tuple[int, Payload]]) -> list[tuple[int, bytes]]:
    """Consecutive payloads of one stream joined into bytes of their own (stdin's counted as
    stdout), empty ones out."""
    out: list[tuple[int, list[Payload]]] = []
    for stream, payload in frames:
        name = stream if stream == 2 else 1
        if not payload:
            continue
        if out and out[-1][0] == name:
            out[-1][1].append(payload)
        else:
            out.append((name, [payload]))
    return [(name, bytes(parts[0]) if len(parts) == 1 else b"".join(parts))
            for name, parts in out]


class DockerAttachStream(AgentStream):
    """The container's attached stdin/stdout/stderr over the engine's hijacked socket.

    The engine multiplexes stdout and stderr with 8-byte headers (docker_stream.py splits
    them). Plain and TLS sockets alike are non-blocking and driven by the event loop alone:
    reads take everything the TLS layer already decrypted (a readiness event never comes
    for those bytes), writes wait for the socket when the engine is backed up.
    """

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._split = FrameSplitter()
        self._rbuf = memoryview(bytearray(_MAX_PARTS * CHUNK))  # reused by every read
        self._queue: asyncio.Queue[tuple[int, bytes]] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False
        self._queued = 0  # payload bytes read from the socket and not yet taken
        self._held = False  # reading stopped until the channel takes some
        self._lock = threading.Lock()

    def _bind(self) -> asyncio.Queue[tuple[int, bytes]]:
        if self._queue is None:
            self._loop = asyncio.get_running_loop()
            self._queue = asyncio.Queue()
            self._sock.setblocking(False)
            _widen_send(self._sock)
            self._loop.add_reader(self._sock.fileno(), self._on_readable)
        return self._queue

    def _on_readable(self) -> None:
        assert self._queue is not None and self._loop is not None
        try:
            got = recv_available_into(self._sock, self._rbuf)
        except (OSError, ValueError):
            got = 0
        if got is None:
            return
        try:
            frames = self._split.views(self._rbuf[:got]) if got else []
        except ValueError:
            frames, got = [], 0  # not an attach stream: end it, the channel says why
        for stream, payload in _runs(frames):
            self._queued += len(payload)
            self._queue.put_nowait((stream, payload))
        if not got:
            self._loop.remove_reader(self._sock.fileno())
            self._queue.put_nowait((0, b""))
        elif self._queued > _HIGH_WATER and not self._held:
            self._held = True  # the engine's buffers and the agent wait, not our memory
            self._loop.remove_reader(self._sock.fileno())
        elif _pending(self._sock) and not self._closed:
            # The buffer filled mid-record: the record's rest waits, decrypted, in the TLS
            # layer, and no readiness event will announce it.
            self._loop.call_soon(self._on_readable)

    async def read(self) -> tuple[int, bytes]:
        item = await self._bind().get()
        self._queued -= len(item[1])
        if self._held and self._queued < _LOW_WATER and not self._closed:
            self._held = False
            assert self._loop is not None
            self._loop.add_reader(self._sock.fileno(), self._on_readable)
            self._on_readable()  # TLS may hold decrypted bytes no readiness event announces
        return item

    async def write(self, data: bytes) -> None:
        self._bind()
        assert self._loop is not None
        await send_all(self._loop, self._sock, data, lambda: self._closed)

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        if self._loop is not None and not self._loop.is_closed():
            with contextlib.suppress(Exception):
                self._loop.remove_reader(self._sock.fileno())
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        self._sock.close()


def _widen_send(sock: socket.socket) -> None:
    """A larger send buffer for a local engine's socket: a unix socket says writable once
    its queue is under a quarter of the buffer, so a 200 KiB default woke the writer for
    every ~150 KiB of an upload (the kernel caps the size at net.core.wmem_max)."""
    if getattr(sock, "family", None) == socket.AF_UNIX:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, _SEND_BUFFER)
