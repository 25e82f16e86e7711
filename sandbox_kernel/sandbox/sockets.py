"""Writing to the host's non-blocking sockets to a sandbox (the engine's attach, plain or
TLS, and the direct link) from the event loop."""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Callable

from ..errors import SessionGone


async def send_all(loop: asyncio.AbstractEventLoop, sock: socket.socket, data: bytes,
                   closed: Callable[[], bool]) -> None:
    """Send all of `data` on a non-blocking (plain or TLS) socket, waiting while it is full;
    SessionGone once `closed()` or the socket fails."""
    view = memoryview(data)
    while view:
        if closed():
            raise SessionGone("the sandbox's connection is closed")
        try:
            view = view[sock.send(view):]
        except (BlockingIOError, InterruptedError, ssl.SSLWantWriteError,
                ssl.SSLWantReadError):
            await _writable(loop, sock)
        except OSError as exc:
            raise SessionGone("the sandbox's connection is closed") from exc


async def _writable(loop: asyncio.AbstractEventLoop, sock: socket.socket) -> None:
    ready = loop.create_future()
    fd = sock.fileno()
    loop.add_writer(fd, _settle, ready)
    try:
        await asyncio.wait_for(ready, 1.0)
    except asyncio.TimeoutError:
        pass  # a TLS renegotiation may want a read, or the stream closed: look again
    finally:
        loop.remove_writer(fd)


def _settle(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
