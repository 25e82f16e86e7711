"""The kernel's shell, stdin, control and IOPub sockets, bound before ipykernel is imported.

A Jupyter client connects as soon as it has started the kernel and, while nothing listens,
retries every 100 ms (ZMQ's reconnect interval). Binding the ports from the connection
file early lets the client connect at its first retry and queue its requests while the
kernel imports ipykernel and prepares the sandbox; the app then takes these sockets over
instead of binding its own (docs/architecture.md, "Starting").
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Sequence
from typing import Any

import zmq

#: The channels bound early, in the order ipykernel creates them, with their socket types.
CHANNELS = (("shell", zmq.ROUTER), ("stdin", zmq.ROUTER), ("control", zmq.ROUTER),
            ("iopub", zmq.XPUB))


class EarlyContext(zmq.Context):  # type: ignore[type-arg]
    """A ZMQ context whose `socket()` hands out the early sockets, by type, in order."""

    # Declared here: pyzmq takes other attribute assignments for context options.
    waiting: list[zmq.Socket[Any]] = []
    given: dict[zmq.Socket[Any], int] = {}

    def early_init(self, waiting: list[zmq.Socket[Any]]) -> None:
        """Keep the bound sockets that `socket()` gives out before making new ones."""
        self.waiting = waiting
        self.given = {}

    def socket(self, socket_type: int, socket_class: Any = None, **kwargs: Any) -> Any:
        for s in self.waiting:
            if s.type == socket_type:
                self.waiting.remove(s)
                self.given[s] = _endpoint(s)[1]
                return s
        return super().socket(socket_type, socket_class, **kwargs)

    def bound_port(self, s: zmq.Socket[Any]) -> int | None:
        """The port an early socket given out is bound to, or None for a new socket."""
        return self.given.get(s)

    def release(self, port: int) -> None:
        """Close an early socket still waiting on this port, and wait (up to a second) for
        ZMQ's I/O thread to let go of the port, so a new socket can bind it."""
        for s in list(self.waiting):
            ip, bound = _endpoint(s)
            if bound == port:
                self.waiting.remove(s)
                s.close(linger=0)
                _wait_until_free(ip, port)

    def close_waiting(self) -> None:
        """Close the early sockets nobody took."""
        while self.waiting:
            self.waiting.pop().close(linger=0)


def _endpoint(s: zmq.Socket[Any]) -> tuple[str, int]:
    """The address and port a TCP socket is bound to ("tcp://127.0.0.1:5555")."""
    ip, _, port = s.getsockopt_string(zmq.LAST_ENDPOINT).removeprefix("tcp://").rpartition(":")
    return ip, int(port)


def _wait_until_free(ip: str, port: int, tries: int = 100) -> None:
    for _ in range(tries):
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((ip, port))
                return
            except OSError:
                time.sleep(0.01)


def connection_file(argv: Sequence[str]) -> str | None:
    """The `-f FILE` (or `--f=FILE`) argument a kernel manager passes, if any."""
    for i, arg in enumerate(argv):
        if arg in ("-f", "--f") and i + 1 < len(argv):
            return argv[i + 1]
        for prefix in ("-f=", "--f="):
            if arg.startswith(prefix):
                return arg[len(prefix):]
    return None


def bind_early(argv: Sequence[str]) -> tuple[EarlyContext, dict[str, Any]] | None:
    """Bind the channels a connection file names; None if it cannot be done plainly
    (no file yet, IPC or encrypted transport, a port taken): the app then binds as usual."""
    try:
        return _bind(argv)
    except (OSError, ValueError, LookupError, TypeError, AttributeError, zmq.ZMQError):
        return None  # a head start only: never the reason a kernel does not start


def _bind(argv: Sequence[str]) -> tuple[EarlyContext, dict[str, Any]] | None:
    path = connection_file(argv)
    try:
        with open(path or "", encoding="utf-8") as f:
            info = json.load(f)
        ports = [int(info[f"{name}_port"]) for name, _ in CHANNELS]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if (info.get("transport", "tcp") != "tcp" or min(ports) <= 0
            or any(k.startswith("curve") for k in info)):
        return None
    context = EarlyContext()
    bound: list[zmq.Socket[Any]] = []
    context.early_init([])
    try:
        for (_, kind), port in zip(CHANNELS, ports, strict=True):
            s = context.socket(kind)
            bound.append(s)
            s.bind(f"tcp://{info.get('ip', '127.0.0.1')}:{port}")
    except zmq.ZMQError:
        for s in bound:
            s.close(linger=0)
        context.term()
        return None
    context.waiting = bound
    return context, info
