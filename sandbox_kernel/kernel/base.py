"""Jupyter messaging for a kernel whose handlers are coroutines on one asyncio loop.

Shell requests are handled one after another in arrival order, control requests at once
(one at a time) even while a shell request runs; every request is framed by busy and idle
on IOPub. After an execute_request fails with `stop_on_error`, the execute_requests
already waiting are answered `aborted`, as ipykernel does (docs/architecture.md, "The
kernel process").
"""

from __future__ import annotations

import asyncio
import logging
import signal
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import zmq.asyncio

from .channels import IOPubThread
from .wire import Wire, WireError, utcnow

SHELL_TYPES = ("execute_request", "complete_request", "inspect_request", "history_request",
               "comm_info_request", "kernel_info_request", "connect_request",
               "shutdown_request", "is_complete_request", "interrupt_request")
#: Control takes the shell's requests too (as ipykernel), but a cell: its output would carry
#: the parent of whatever runs on the shell, so it is answered with an error instead.
CONTROL_TYPES = (*(t for t in SHELL_TYPES if t != "execute_request"), "usage_request")
Handler = Callable[[Any, list[bytes], dict[str, Any]], Awaitable[None] | None]
_STOP_ABORTING = object()


class KernelBase(ABC):
    """The message loop; subclasses give one method per request type (kernel/requests.py)."""

    def __init__(self, wire: Wire, shell: zmq.asyncio.Socket, control: zmq.asyncio.Socket,
                 stdin: zmq.asyncio.Socket, iopub: IOPubThread, log: logging.Logger,
                 ports: dict[str, int] | None = None) -> None:
        self.wire, self.log, self.ports = wire, log, dict(ports or {})
        self.shell_socket, self.control_socket, self.stdin_socket = shell, control, stdin
        self.iopub_thread = iopub
        self.iopub_socket: Any = iopub
        self.execution_count = 0
        self.shell_handlers: dict[str, Handler] = {t: getattr(self, t) for t in SHELL_TYPES}
        self.control_handlers: dict[str, Handler] = {
            t: getattr(self, t) for t in CONTROL_TYPES}
        self.control_handlers["execute_request"] = self._refuse_execute
        self._parent: dict[str, Any] = {}
        self._parent_ident: list[bytes] = []
        self._aborting = False
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self._stopped: asyncio.Event | None = None
        self._control_lock: asyncio.Lock | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    # ----- sending -------------------------------------------------------------------------
    def send(self, stream: Any, msg_type: str, content: dict[str, Any] | None,
             parent: dict[str, Any] | None, ident: Any = None, buffers: Any = None,
             metadata: dict[str, Any] | None = None) -> dict[str, Any]:
        """Sign and send one message on `stream` (a socket, or IOPub's thread)."""
        msg = self.wire.message(msg_type, content, parent, metadata)
        idents = ident if isinstance(ident, list) else [ident] if ident else []
        frames = self.wire.frames(msg, idents, buffers)
        sent = stream.send_multipart(frames)
        if isinstance(sent, asyncio.Future):
            sent.add_done_callback(_log_failed_send)
        return msg

    def send_response(self, stream: Any, msg_type: str, content: dict[str, Any] | None = None,
                      ident: Any = None, buffers: Any = None,
                      metadata: dict[str, Any] | None = None) -> dict[str, Any]:
        """A message whose parent is the shell request being handled."""
        topic = ident if ident is not None else self.topic(msg_type)
        return self.send(stream, msg_type, content, self._parent, topic, buffers, metadata)

    def topic(self, name: str) -> bytes:
        return f"kernel.{self.wire.session}.{name}".encode()

    def get_parent(self, channel: str | None = None) -> dict[str, Any]:
        return self._parent

    def set_parent(self, ident: list[bytes], parent: dict[str, Any]) -> None:
        self._parent_ident, self._parent = ident, parent

    async def input_request(self, prompt: str, password: bool = False) -> str:
        """Ask the frontend of the current shell request on stdin; its input_reply's value.
        A stale reply (of an earlier, cancelled request) or a malformed one is skipped."""
        while await self.stdin_socket.poll(0):
            await self.stdin_socket.recv_multipart()
        request = self.send(self.stdin_socket, "input_request",
                            {"prompt": prompt, "password": password}, self._parent,
                            self._parent_ident)
        while True:
            try:
                _, reply = self.wire.parse(await self.stdin_socket.recv_multipart())
            except WireError as exc:
                self.log.warning("Invalid stdin message: %s", exc)
                continue
            if reply["parent_header"].get("msg_id") not in (None, request["header"]["msg_id"]):
                continue
            value = reply["content"].get("value")
            return value if isinstance(value, str) else ""

    def _status(self, state: str, parent: dict[str, Any]) -> None:
        self.send(self.iopub_socket, "status", {"execution_state": state}, parent,
                  self.topic("status"))

    # ----- the loop ------------------------------------------------------------------------
    async def serve(self) -> None:
        """Handle requests until a shutdown_request (or `stop`)."""
        self._stopped = asyncio.Event()
        self._control_lock = asyncio.Lock()
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGINT, self.on_interrupt)
        readers = [self._spawn(self._read(self.shell_socket, self._queue.put_nowait)),
                   self._spawn(self._read(self.control_socket, self._on_control)),
                   self._spawn(self._shell_loop())]
        try:
            await self._stopped.wait()
        finally:
            loop.remove_signal_handler(signal.SIGINT)
            for task in readers:
                task.cancel()

    def stop(self) -> None:
        if self._stopped is not None:
            self._stopped.set()

    @abstractmethod
    def on_interrupt(self) -> None:
        """SIGINT (a frontend's interrupt): pass it on to what runs in the sandbox."""

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _read(self, sock: zmq.asyncio.Socket, take: Callable[[list[bytes]], None]) -> None:
        while True:
            take(await sock.recv_multipart())

    def _on_control(self, parts: list[bytes]) -> None:
        self._spawn(self._control(parts))

    async def _control(self, parts: list[bytes]) -> None:
        assert self._control_lock is not None
        async with self._control_lock:
            await self._dispatch(parts, self.control_socket, self.control_handlers, False)

    async def _shell_loop(self) -> None:
        while True:
            parts = await self._queue.get()
            if parts is _STOP_ABORTING:
                self._aborting = False
                continue
            try:
                await self._dispatch(parts, self.shell_socket, self.shell_handlers, True)
            except Exception:  # the shell loop must outlive any one request
                self.log.exception("Exception dispatching a shell request")

    async def _dispatch(self, parts: list[bytes], stream: Any, handlers: dict[str, Handler],
                        shell: bool) -> None:
        try:
            idents, msg = self.wire.parse(parts)
        except WireError as exc:
            self.log.error("Invalid message: %s", exc)
            return
        msg_type = msg["header"].get("msg_type")
        if shell:
            self.set_parent(idents, msg)
        self._status("busy", msg)
        try:
            handler = handlers.get(msg_type) if isinstance(msg_type, str) else None
            if shell and msg_type == "execute_request" and self._aborting:
                self._abort_reply(stream, idents, msg)
            elif handler is None:
                self.log.warning("Unknown message type: %r", msg_type)
            else:
                result = handler(stream, idents, msg)  # comm.CommManager's are plain calls
                if result is not None:
                    await result
        except Exception:
            self.log.exception("Exception in message handler")
        finally:
            self._status("idle", msg)

    async def _abort_waiting(self) -> None:
        """Abort the execute_requests that arrived before now (ipykernel's stop_on_error)."""
        self._aborting = True
        for _ in range(3):  # let the reader move what ZMQ holds into the queue
            await asyncio.sleep(0)
        self._queue.put_nowait(_STOP_ABORTING)

    def init_metadata(self, parent: dict[str, Any]) -> dict[str, Any]:
        return {"started": utcnow()}

    def finish_metadata(self, parent: dict[str, Any], metadata: dict[str, Any],
                        reply_content: dict[str, Any]) -> dict[str, Any]:
        return metadata

    async def _refuse_execute(self, stream: Any, idents: list[bytes],
                              msg: dict[str, Any]) -> None:
        content = {"status": "error", "execution_count": self.execution_count,
                   "ename": "UsageError", "traceback": [],
                   "evalue": "cells run on the shell channel, not on control"}
        self.send(stream, "execute_reply", content, msg, idents)

    def _abort_reply(self, stream: Any, idents: list[bytes], msg: dict[str, Any]) -> None:
        self.log.info("Aborting %s", msg["header"].get("msg_id"))
        status = {"status": "aborted"}
        md = self.finish_metadata(msg, self.init_metadata(msg), status)
        self.send(stream, "execute_reply", status, msg, idents, metadata={**md, **status})


def _log_failed_send(sent: asyncio.Future[Any]) -> None:
    if not sent.cancelled() and sent.exception() is not None:
        logging.getLogger(__name__).warning("a reply was not sent: %s", sent.exception())
