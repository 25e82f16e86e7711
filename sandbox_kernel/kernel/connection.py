"""The connection file and the channels it names, bound and ready for the kernel.

A client's connection file gives the transport, address, ports and signing key; the
channels bound early (early_sockets.py) are taken over when they are on those ports. A
kernel started by hand, without a file, picks free ports and writes one to Jupyter's
runtime directory, as ipykernel does, for `jupyter console --existing`.
"""

from __future__ import annotations

import json
import logging
import os
import uuid
from typing import Any

import zmq
import zmq.asyncio

from .channels import IOPubThread, as_async, start_heartbeat
from .early_sockets import CHANNELS, EarlySockets
from .wire import Wire

_TYPES = {**dict(CHANNELS), "hb": zmq.ROUTER}
_LINGER_MS = 1000


class Connection:
    """The context, the bound sockets and the signing key of one kernel."""

    def __init__(self, info: dict[str, Any], context: zmq.Context[Any],
                 sockets: dict[str, zmq.Socket[Any]], path: str | None) -> None:
        self.info, self.context, self.sockets, self.path = info, context, sockets, path
        self.wire = Wire(str(info.get("key", "")).encode(),
                         str(info.get("signature_scheme", "hmac-sha256")))
        self.ports = {f"{n}_port": int(info[f"{n}_port"]) for n in _TYPES}
        self.iopub = IOPubThread(sockets["iopub"], self.wire)
        start_heartbeat(sockets["hb"])

    @classmethod
    def open(cls, path: str, early: EarlySockets | None, log: logging.Logger) -> Connection:
        """Bind what `path` names (taking over early sockets), or make a new file."""
        info = _read(path) if path else None
        written = None
        if info is None:
            info = {"transport": "tcp", "ip": "127.0.0.1", "key": str(uuid.uuid4()),
                    "signature_scheme": "hmac-sha256", "kernel_name": "sandbox"}
        context: zmq.Context[Any]
        taken: dict[str, zmq.Socket[Any]] = {}
        if early is not None and _same(early.info, info):
            context, taken = early.context, dict(early.sockets)
            early.sockets.clear()
            log.debug("Took over the channels bound before the imports")
        else:
            if early is not None:
                early.close()
                early.context.term()
            context = zmq.Context()
        sockets = {name: _options(taken.pop(name), name) if name in taken
                   else _socket(context, name, info) for name in _TYPES}
        if not path or not os.path.exists(path):
            written = _write(path, info)
            log.warning("To connect another client to this kernel, use: --existing %s",
                        os.path.basename(written))
        return cls(info, context, sockets, written or path)

    def channels(self) -> tuple[zmq.asyncio.Socket, zmq.asyncio.Socket,
                                zmq.asyncio.Socket, IOPubThread]:
        """(shell, control, stdin) for the event loop, and IOPub's sending thread."""
        return (as_async(self.sockets["shell"]), as_async(self.sockets["control"]),
                as_async(self.sockets["stdin"]), self.iopub)

    def close(self) -> None:
        """Send what IOPub has queued, then close everything."""
        self.iopub.stop()
        self.context.destroy(linger=_LINGER_MS)


def _read(path: str) -> dict[str, Any] | None:
    try:
        with open(path, encoding="utf-8") as f:
            info = json.load(f)
    except FileNotFoundError:
        return None
    if not isinstance(info, dict):
        raise ValueError(f"{path}: not a connection file")
    if info.get("transport", "tcp") not in ("tcp", "ipc"):
        raise ValueError(f"{path}: the transport must be tcp or ipc")
    return info


def _same(early_info: dict[str, Any], info: dict[str, Any]) -> bool:
    return all(early_info.get(k, "tcp") == info.get(k, "tcp") for k in
               ("transport", "ip", *(f"{n}_port" for n, _ in CHANNELS)))


def _socket(context: zmq.Context[Any], name: str, info: dict[str, Any]) -> zmq.Socket[Any]:
    """A new socket bound now (port 0 in the info: a free one, recorded there). Over ipc,
    as ipykernel: the endpoint is the file `{ip}-{port}`."""
    port = int(info.get(f"{name}_port") or 0)
    s = _options(context.socket(_TYPES[name]), name)
    ip = info.get("ip", "127.0.0.1")
    if info.get("transport", "tcp") == "ipc":
        if not port:
            port = 1
            while os.path.exists(f"{ip}-{port}"):
                port += 1
            info[f"{name}_port"] = port
        s.bind(f"ipc://{ip}-{port}")
    elif port:
        s.bind(f"tcp://{ip}:{port}")
    else:
        info[f"{name}_port"] = s.bind_to_random_port(f"tcp://{ip}")
    return s


def _options(s: zmq.Socket[Any], name: str) -> zmq.Socket[Any]:
    s.linger = _LINGER_MS
    if name in ("shell", "stdin", "control") and hasattr(zmq, "ROUTER_HANDOVER"):
        s.router_handover = 1  # as ipykernel: a reconnecting client takes its identity back
    return s


def _write(path: str, info: dict[str, Any]) -> str:
    from jupyter_core.paths import jupyter_runtime_dir, secure_write

    if not path:
        directory = jupyter_runtime_dir()
        os.makedirs(directory, exist_ok=True)
        path = os.path.join(directory, f"kernel-{os.getpid()}.json")
    with secure_write(path) as f:
        json.dump(info, f, indent=1)
    return path
