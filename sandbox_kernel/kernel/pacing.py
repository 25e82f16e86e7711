"""Backpressure from the frontend to the sandbox, so a fast producer loses nothing silently.

ipykernel's IOPub socket is a ZMQ XPUB, which drops messages past its high-water mark
(1,000 per subscriber) when the publisher outruns the reader: a burst of small displays
lost a share of them. Here IOPub is set to XPUB_NODROP (a full subscriber makes a send
wait, up to SEND_TIMEOUT_MS, then it is counted as lost), the kernel waits while too many
of its messages are still queued for the IOPub thread, and meanwhile the cell's executor
takes no further agent frame: the attach stream stops reading past a few MB and the
engine's pipes fill, so the sandbox is paced.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import zmq

#: A subscriber that reads nothing for this long loses the message (counted, reported).
SEND_TIMEOUT_MS = 10_000
_MAX_PENDING = 500
_MAX_PENDING_BYTES = 32 << 20


class PacedIOPub:
    """Stands in for the IOPub socket in `session.send`: sends run in ipykernel's IOPub
    thread (in order with its own), and the event loop can wait for room."""

    def __init__(self, thread: Any) -> None:
        self.thread = thread
        self._lock = threading.Lock()
        self.pending = 0
        self.pending_bytes = 0
        self.lost = 0
        thread.schedule(self._configure)

    def _configure(self) -> None:
        sock = self.thread.socket
        if sock.getsockopt(zmq.TYPE) == zmq.XPUB:
            sock.setsockopt(zmq.XPUB_NODROP, 1)
            sock.setsockopt(zmq.SNDTIMEO, SEND_TIMEOUT_MS)

    def send_multipart(self, parts: list[Any], copy: bool = True, **_: Any) -> None:
        size = sum(len(p) for p in parts)
        with self._lock:
            self.pending += 1
            self.pending_bytes += size
        self.thread.schedule(lambda: self._send(parts, size, copy))

    def _send(self, parts: list[Any], size: int, copy: bool) -> None:
        try:
            self.thread.socket.send_multipart(parts, copy=copy)
        except zmq.Again:
            with self._lock:
                self.lost += 1
        except zmq.ZMQError:  # closed at shutdown
            pass
        finally:
            with self._lock:
                self.pending -= 1
                self.pending_bytes -= size

    @property
    def full(self) -> bool:
        return self.pending > _MAX_PENDING or self.pending_bytes > _MAX_PENDING_BYTES

    async def room(self) -> None:
        """Return once the IOPub thread has caught up enough to take more."""
        while self.full:
            await asyncio.sleep(0.002)

    def take_lost(self) -> int:
        with self._lock:
            lost, self.lost = self.lost, 0
        return lost
