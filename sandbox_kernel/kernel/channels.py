"""The kernel's five ZMQ channels: shell, control and stdin read on the event loop, IOPub
sent from its own thread, the heartbeat echoed by another.

IOPub is an XPUB socket: each new subscriber gets an `iopub_welcome` (as ipykernel sends
since protocol 5.4), and sends happen in one thread, in order, so the event loop never
blocks on a slow subscriber (pacing.py waits for room instead).
"""

from __future__ import annotations

import logging
import os
import queue
import threading
from collections.abc import Callable
from typing import Any

import zmq
import zmq.asyncio

from .wire import Wire

log = logging.getLogger(__name__)
NAMES = ("shell", "iopub", "stdin", "control", "hb")


class IOPubThread:
    """Runs callables that use the IOPub socket, in order, in one thread (`schedule`)."""

    def __init__(self, sock: zmq.Socket[Any], wire: Wire) -> None:
        self.socket = sock
        self.wire = wire
        self._jobs: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self._wake_r, self._wake_w = os.pipe()
        self._stopping = False
        self._lock = threading.Lock()  # a job is queued whole, or after `stop` not at all
        self._thread = threading.Thread(target=self._run, name="iopub", daemon=True)
        self._thread.start()

    def schedule(self, job: Callable[[], None] | None) -> None:
        """Run `job` in the IOPub thread; dropped once `stop` was called (a widget closed
        by the interpreter's exit, after the last send)."""
        with self._lock:
            if self._stopping:
                log.debug("IOPub is stopped: a message was dropped")
                return
            self._stopping = job is None
            self._jobs.put(job)
            os.write(self._wake_w, b"x")

    def send_multipart(self, parts: list[bytes]) -> None:
        """Queue one message (the kernel's `send` takes this for a socket)."""
        self.schedule(lambda: self._send(parts))

    def _send(self, parts: list[bytes]) -> None:
        try:
            self.socket.send_multipart(parts)
        except zmq.ZMQError as exc:
            log.debug("IOPub send failed: %s", exc)

    def _run(self) -> None:
        poller = zmq.Poller()
        poller.register(self.socket, zmq.POLLIN)
        poller.register(self._wake_r, zmq.POLLIN)
        while True:
            ready = dict(poller.poll())
            if self.socket in ready:
                self._welcome()
            if self._wake_r not in ready:
                continue
            os.read(self._wake_r, 4096)
            while not self._jobs.empty():
                job = self._jobs.get()
                if job is None:
                    with self._lock:
                        os.close(self._wake_r)
                        os.close(self._wake_w)
                    return
                try:
                    job()
                except Exception:
                    log.exception("IOPub job failed")

    def _welcome(self) -> None:
        """An `iopub_welcome` for each new subscription."""
        try:
            while self.socket.poll(0):
                frame = self.socket.recv()
                if frame[:1] == b"\x01":
                    topic = frame[1:].decode("utf-8", "replace")
                    msg = self.wire.message("iopub_welcome", {"subscription": topic})
                    self.socket.send_multipart(self.wire.frames(
                        msg, [frame[1:]] if topic else [b"kernel.iopub_welcome"]))
        except zmq.ZMQError as exc:
            log.debug("IOPub subscription not handled: %s", exc)

    def stop(self, timeout: float = 5.0) -> None:
        """Send what is queued, then end the thread."""
        if self._thread.is_alive():
            self.schedule(None)
            self._thread.join(timeout)


def start_heartbeat(sock: zmq.Socket[Any]) -> threading.Thread:
    """Echo every heartbeat ping back to its sender, in a thread (as ipykernel does)."""

    def echo() -> None:
        try:
            zmq.proxy(sock, sock)
        except zmq.ZMQError:
            pass  # the context was terminated: the kernel is exiting

    thread = threading.Thread(target=echo, name="heartbeat", daemon=True)
    thread.start()
    return thread


def as_async(sock: zmq.Socket[Any]) -> zmq.asyncio.Socket:
    """The same socket, read with `await` on the running event loop."""
    return zmq.asyncio.Socket.from_socket(sock)
