"""Comms in the Python worker: the `comm` package's hooks, so ipywidgets works in cells.

A comm's messages become comm frames on the worker's current pipe (the running cell's, or
the reply pipe between cells); comm messages from the frontend arrive as worker requests.
`get_ipython().kernel` is a small stand-in whose parent header names the message being
handled, which is what the Output widget needs to capture outputs (docs/architecture.md,
"Widgets"). Nothing here is trusted by the host: it validates every frame again.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

from .protocol import MAX_COMM_BUFFERS

#: The parent msg_id the worker reports; the host puts the real one in its place.
PARENT_ID = "sandbox-parent"


class KernelStandIn:
    """Enough of ipykernel's Kernel for ipywidgets 8, tqdm.notebook and ipympl."""

    def __init__(self, manager: Any) -> None:
        self.comm_manager = manager
        self._parent: dict[str, Any] = {"header": {"msg_id": PARENT_ID, "msg_type":
                                                   "execute_request"}}

    def get_parent(self, channel: str = "shell") -> dict[str, Any]:
        return self._parent

    def set_parent(self, ident: Any, parent: dict[str, Any], channel: str = "shell") -> None:
        pass  # one parent for the worker: the host knows the real one


def _b64(buffers: Any) -> list[str]:
    out = []
    for b in list(buffers or [])[:MAX_COMM_BUFFERS]:
        raw = b.tobytes() if isinstance(b, memoryview) else bytes(b)
        out.append(base64.b64encode(raw).decode("ascii"))
    return out


def _jsonable(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def install(emit: Callable[[dict[str, Any]], None]) -> Any:
    """Replace `comm.create_comm` and `comm.get_comm_manager`; returns the manager."""
    import comm
    from comm.base_comm import BaseComm, CommManager

    class SandboxComm(BaseComm):
        def publish_msg(self, msg_type: str, data: Any = None, metadata: Any = None,
                        buffers: Any = None, **keys: Any) -> None:
            frame: dict[str, Any] = {"type": msg_type, "comm_id": self.comm_id,
                                     "data": _jsonable(data), "metadata": _jsonable(metadata),
                                     "buffers": _b64(buffers)}
            if msg_type == "comm_open":
                frame["target_name"] = str(keys.get("target_name") or self.target_name)
                module = keys.get("target_module")
                frame["target_module"] = module if isinstance(module, str) else None
            emit(frame)

    manager = CommManager()
    comm.create_comm = SandboxComm
    comm.get_comm_manager = lambda: manager
    return manager


def message(req: dict[str, Any]) -> dict[str, Any]:
    """A worker request as the Jupyter message a comm handler expects."""
    content: dict[str, Any] = {"comm_id": req["comm_id"], "data": req["data"]}
    if req["type"] == "comm_open":
        content["target_name"] = req["target_name"]
        content["target_module"] = req.get("target_module")
    return {"header": {"msg_id": PARENT_ID, "msg_type": req["type"]},
            "parent_header": {}, "metadata": req["metadata"], "content": content,
            "buffers": [memoryview(base64.b64decode(b)) for b in req["buffers"]]}


def comm_info(manager: Any, target: str | None) -> dict[str, str]:
    """comm_id -> target_name of the open comms (of one target, if given)."""
    return {cid: str(c.target_name) for cid, c in list(manager.comms.items())[:10_000]
            if target is None or c.target_name == target}


def attach(shell: Any, manager: Any) -> None:
    """`get_ipython().kernel` for ipywidgets, and the marks by which tqdm.auto and others
    tell a notebook kernel from a terminal (an empty `ipykernel.zmqshell` module)."""
    import sys
    import types

    from traitlets.config import Config

    shell.kernel = KernelStandIn(manager)
    if "IPKernelApp" not in shell.config:
        shell.config["IPKernelApp"] = Config()
    sys.modules.setdefault("ipykernel.zmqshell", types.ModuleType(
        "ipykernel.zmqshell", "stand-in: this interpreter is a notebook's (sandbox-kernel)"))
