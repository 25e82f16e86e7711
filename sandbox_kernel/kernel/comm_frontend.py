"""The frontend's side of the comm bridge: its comm messages and comm_info requests.

A comm message for one of the kernel's own comms goes to the comm manager in this
process (host_comms.py); one for the sandbox's becomes a request whose handler's output is
published as a cell's (comm_bridge.py has the other direction and the checks;
docs/architecture.md, "Widgets").
"""

from __future__ import annotations

import base64
import logging
from typing import TYPE_CHECKING, Any

from ..agent.protocol import MAX_COMM_BUFFERS
from ..errors import SandboxError

if TYPE_CHECKING:
    from .comm_bridge import CommBridge
    from .kernel import SandboxKernel

log = logging.getLogger(__name__)
CONTROL_TARGET = "jupyter.widget.control"


class FrontendComms:
    """Shell handlers for comm_open, comm_msg, comm_close and comm_info_request."""

    def __init__(self, bridge: CommBridge) -> None:
        self.bridge = bridge

    def install(self, kernel: SandboxKernel) -> None:
        """Route the frontend's comm messages here; they take their turn among the shell's
        requests, so a cell's output and idle never name a widget message (a cell's
        widgets get their messages after it, as with ipykernel 6)."""
        for msg_type in ("comm_open", "comm_msg", "comm_close"):
            kernel.shell_handlers[msg_type] = getattr(self, "frontend_" + msg_type)
        kernel.shell_handlers["comm_info_request"] = self.comm_info_request

    def _ours(self, msg: dict[str, Any]) -> bool:
        return msg["content"].get("comm_id") in self.bridge.manager.comms

    async def frontend_comm_open(self, stream: Any, ident: Any, msg: dict[str, Any]) -> None:
        target = msg["content"].get("target_name")
        if target == CONTROL_TARGET or target not in self.bridge.manager.targets:
            # The control comm would answer for one side only: refused, the frontend asks
            # each model through comm_info instead (both the kernel's and the sandbox's).
            self.bridge.publish("comm_close", {"comm_id": msg["content"].get("comm_id", ""),
                                         "data": {}}, [])
            return
        self.bridge.manager.comm_open(stream, ident, msg)

    async def frontend_comm_msg(self, stream: Any, ident: Any, msg: dict[str, Any]) -> None:
        if self._ours(msg):
            self.bridge.manager.comm_msg(stream, ident, msg)
        else:
            await self._to_sandbox("comm_msg", msg)

    async def frontend_comm_close(self, stream: Any, ident: Any, msg: dict[str, Any]) -> None:
        if self._ours(msg):
            self.bridge.manager.comm_close(stream, ident, msg)
        elif await self._to_sandbox("comm_close", msg):
            self.bridge.models.pop(msg["content"].get("comm_id"), None)

    async def _to_sandbox(self, msg_type: str, msg: dict[str, Any]) -> bool:
        bridge, content = self.bridge, msg["content"]
        session, comm_id = bridge.kernel.current_session(), content.get("comm_id")
        if session is None or session is not bridge.session or comm_id not in bridge.models:
            return False
        buffers = [bytes(b) for b in msg.get("buffers") or []][:MAX_COMM_BUFFERS]
        data = content.get("data") if isinstance(content.get("data"), dict) else {}
        if sum(map(len, buffers)) + len(str(data)) > bridge.limits.max_message:
            bridge.kernel.stream("stderr", "[sandbox] a widget message from the browser was "
                                 "too large for the sandbox and was dropped\n")
            return False
        fields = {"comm_id": comm_id, "data": data, "metadata": msg.get("metadata") or {},
                  "buffers": [base64.b64encode(b).decode("ascii") for b in buffers],
                  "timeout": float(session.limits.timeout)}
        try:
            call = await session.channel.call(msg_type, **fields)
        except SandboxError as exc:
            log.warning("a widget message could not reach the sandbox: %s", exc)
            return False
        bridge.handling = True
        try:
            if bridge.relay is not None:
                await bridge.relay(session, call)
        finally:
            bridge.handling = False
        bridge.flush_notice()
        return True

    async def comm_info_request(self, stream: Any, ident: Any, parent: dict[str, Any]) -> None:
        """The kernel's own comms and the sandbox's that are still open there."""
        bridge, target = self.bridge, parent["content"].get("target_name")
        comms = {k: {"target_name": v.target_name} for k, v in bridge.manager.comms.items()
                 if target is None or v.target_name == target}
        open_there = await self._sandbox_comms(target)
        comms.update({k: {"target_name": m.target} for k, m in bridge.models.items()
                      if (target is None or m.target == target) and
                      (open_there is None or k in open_there)})
        bridge.kernel.send(stream, "comm_info_reply", {"status": "ok", "comms": comms}, parent,
                           ident)

    async def _sandbox_comms(self, target: str | None) -> set[str] | None:
        session = self.bridge.kernel.current_session()
        if session is None or session is not self.bridge.session or not self.bridge.models:
            return set()
        try:
            body = await session.request("comm_info", target_name=target, timeout=5,
                                         activity=False)
        except SandboxError:
            return None  # busy or slow: the host's record stands
        return set(body["comms"])
