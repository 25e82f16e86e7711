"""The kernel's shell, stdin, control and IOPub sockets, bound before the kernel's imports.

A Jupyter client connects as soon as it has started the kernel and, while nothing listens,
retries every 100 ms (ZMQ's reconnect interval). Binding the ports from the connection
file early lets the client connect at its first retry and queue its requests while the
kernel imports its modules and prepares the sandbox; the app then takes these sockets over
instead of binding its own (docs/architecture.md, "Starting").
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, NamedTuple

import zmq

#: The channels bound early, with their socket types (the heartbeat binds with the rest).
CHANNELS = (("shell", zmq.ROUTER), ("stdin", zmq.ROUTER), ("control", zmq.ROUTER),
            ("iopub", zmq.XPUB))


class EarlySockets(NamedTuple):
    """The channels bound from a connection file, by name, and the file's contents."""

    context: zmq.Context[Any]
    info: dict[str, Any]
    sockets: dict[str, zmq.Socket[Any]]

    def close(self) -> None:
        for s in self.sockets.values():
            s.close(linger=0)
        self.sockets.clear()


def connection_file(argv: Sequence[str]) -> str | None:
    """The `-f FILE` (or `--f=FILE`) argument a kernel manager passes, if any."""
    for i, arg in enumerate(argv):
        if arg in ("-f", "--f") and i + 1 < len(argv):
            return argv[i + 1]
        for prefix in ("-f=", "--f="):
            if arg.startswith(prefix):
                return arg[len(prefix):]
    return None


def bind_early(argv: Sequence[str]) -> EarlySockets | None:
    """Bind the channels a connection file names; None if it cannot be done plainly
    (no file yet, IPC or encrypted transport, a port taken): the app then binds as usual."""
    try:
        return _bind(argv)
    except (OSError, ValueError, LookupError, TypeError, AttributeError, zmq.ZMQError):
        return None  # a head start only: never the reason a kernel does not start


def _bind(argv: Sequence[str]) -> EarlySockets | None:
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
    early = EarlySockets(zmq.Context(), info, {})
    try:
        for (name, kind), port in zip(CHANNELS, ports, strict=True):
            early.sockets[name] = s = early.context.socket(kind)
            s.bind(f"tcp://{info.get('ip', '127.0.0.1')}:{port}")
    except zmq.ZMQError:
        early.close()
        early.context.term()
        return None
    return early
