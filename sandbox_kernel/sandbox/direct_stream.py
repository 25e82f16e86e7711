"""The AgentStream of a sandbox on its direct link (sandbox/direct.py explains the link).

Frames go both ways on the unix socket; the engine's attach is still read, for the agent's
stderr and for its end (the container stopped), and closed with the link (stdin EOF ends
the agent). The socket is read only while the channel keeps up, as the attach stream is.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket

from ..errors import SessionGone
from .backend import AgentStream
from .sockets import send_all

log = logging.getLogger(__name__)

_HIGH_WATER, _LOW_WATER = 4 * 1024 * 1024, 1024 * 1024
_BUFFER = 4 * 1024 * 1024  # socket buffers (the kernel caps them at wmem_max/rmem_max)
_READ = 1 << 20
_EOF_GRACE_S = 2.0


class DirectStream(AgentStream):
    """Frames on `sock`; stderr and the end from `attach`. Bound to the loop it starts on."""

    def __init__(self, attach: AgentStream, sock: socket.socket) -> None:
        self._attach = attach
        self._sock = sock
        self._loop = asyncio.get_running_loop()
        self._queue: asyncio.Queue[tuple[int, bytes]] = asyncio.Queue()
        self._queued = 0
        self._held = False
        self._closed = False
        self._ended = False
        sock.setblocking(False)
        for opt in (socket.SO_SNDBUF, socket.SO_RCVBUF):
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, opt, _BUFFER)
        self._loop.add_reader(sock.fileno(), self._on_readable)
        self._pump = self._loop.create_task(self._pump_attach())

    async def _pump_attach(self) -> None:
        """The attach's stderr goes up as before; stdout there is no longer the agent's
        frames (it said so in its link reply), so it is dropped with a log line."""
        while True:
            try:
                kind, data = await self._attach.read()
            except SessionGone:
                kind, data = 0, b""
            if kind == 1:
                log.warning("dropped %d bytes the agent wrote on stdout after its link moved",
                            len(data))
                continue
            self._put(kind, data)
            if kind == 0:
                return

    def _put(self, kind: int, data: bytes) -> None:
        if self._ended:
            return
        self._ended = kind == 0
        self._queued += len(data)
        self._queue.put_nowait((kind, data))

    def _on_readable(self) -> None:
        try:
            data = self._sock.recv(_READ)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            # The agent is gone; the attach ends once the engine has seen the container
            # stop, and so the channel's end waits for that (a diagnosis then finds it
            # stopped, with its exit code), but not for long.
            self._loop.remove_reader(self._sock.fileno())
            self._loop.call_later(_EOF_GRACE_S, self._put, 0, b"")
            return
        self._put(1, data)
        if self._queued > _HIGH_WATER and not self._held:
            self._held = True  # the agent waits, not our memory
            self._loop.remove_reader(self._sock.fileno())

    async def read(self) -> tuple[int, bytes]:
        item = await self._queue.get()
        self._queued -= len(item[1])
        if self._held and self._queued < _LOW_WATER and not self._closed:
            self._held = False
            self._loop.add_reader(self._sock.fileno(), self._on_readable)
        return item

    async def write(self, data: bytes) -> None:
        await send_all(self._loop, self._sock, data, lambda: self._closed)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if not self._loop.is_closed():
            with contextlib.suppress(Exception):
                self._loop.remove_reader(self._sock.fileno())
            self._pump.cancel()
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        self._sock.close()
        self._attach.close()
