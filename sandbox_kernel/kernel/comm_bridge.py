"""The comm bridge: the sandbox's widgets to the frontend and back, checked on the way.

Comm frames from the sandbox (in a cell's events, in a comm request's, or between cells)
become comm messages on IOPub only after the checks of widget_state.py, within a rate and
size cap so that a flood cannot starve the kernel's own messages; what is refused or
dropped is said in one visible line. The kernel's own comms (the resource monitor,
widgets.py) stay with ipykernel's comm manager in this process: the sandbox can neither
open, address nor reference them (docs/architecture.md, "Widgets").
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..agent.protocol import MAX_COMM_BYTES
from .comm_frontend import FrontendComms
from .policy import clean_text
from .widget_state import WIDGET_TARGET, Model, StateGuard, Verdict, split_view

if TYPE_CHECKING:
    from ..sandbox.session import AsyncSession
    from .kernel import SandboxKernel

log = logging.getLogger(__name__)
_NOTICE_EVERY_S = 2.0
_SETTLE_S = 0.01  # nbclient sends its Output widget updates within a few ms
#: Widget models the host remembers for one sandbox; past this, new ones are refused.
MAX_MODELS = 100_000


@dataclass(frozen=True)
class CommLimits:
    """How much widget traffic the sandbox may send: messages and bytes per second
    (with bursts of ten seconds' worth), and the largest single message."""

    rate: float = 200.0
    bytes_rate: float = 8 * 2**20
    max_message: int = MAX_COMM_BYTES


class Bucket:
    """A token bucket: `rate` per second, holding at most `burst`."""

    def __init__(self, rate: float, burst: float) -> None:
        self.rate, self.burst = rate, burst
        self.level = burst
        self.at = time.monotonic()

    def take(self, n: float) -> bool:
        now = time.monotonic()
        self.level = min(self.burst, self.level + (now - self.at) * self.rate)
        self.at = now
        if self.level < n:
            return False
        self.level -= n
        return True


def _decode(buffers: list[str]) -> list[bytes] | None:
    try:
        return [base64.b64decode(b, validate=True) for b in buffers]
    except (binascii.Error, ValueError):
        return None


class CommBridge:
    """One kernel's comms: its own (ipykernel's manager) and the sandbox's (bridged)."""

    def __init__(self, kernel: SandboxKernel, manager: Any, guard: StateGuard,
                 limits: CommLimits) -> None:
        self.kernel = kernel
        self.manager = manager
        self.guard = guard
        self.limits = limits
        self.models: dict[str, Model] = {}
        self.session: AsyncSession | None = None
        self.messages = Bucket(limits.rate, limits.rate * 10)
        self.bytes = Bucket(limits.bytes_rate, limits.bytes_rate * 10)
        self.dropped = 0
        self.refused: list[str] = []
        self._noticed = 0.0
        self.relay: Callable[[AsyncSession, Any], Any] | None = None
        self.handling = False  # a frontend's comm message is being handled in the sandbox
        self.published = 0  # comm messages published, for settle()

    def install(self) -> None:
        """Route the frontend's comm messages and comm_info requests (comm_frontend.py)."""
        FrontendComms(self).install(self.kernel)

    # ----- the sandbox's side ---------------------------------------------------------------
    def watch(self, session: AsyncSession) -> None:
        """The sandbox in use; a new one has none of the old one's widgets."""
        if session is self.session:
            return
        self.models.clear()
        self.session = session
        session.channel.listeners.append(self._between_cells)

    def _between_cells(self, frame: dict[str, Any]) -> None:
        if self.session is not None and frame.get("type", "").startswith("comm_"):
            self.from_sandbox(frame)

    def interpreter_lost(self) -> None:
        """The interpreter restarted: its widgets are gone."""
        self.models.clear()

    def split_view(self, data: Any) -> tuple[Any, dict[str, Any] | None]:
        return split_view(data, self.models)

    def from_sandbox(self, frame: dict[str, Any]) -> None:
        """One comm frame from the sandbox: checked, capped, then published."""
        comm_id = frame["comm_id"]
        buffers = _decode(frame["buffers"])
        size = len(str(frame["data"])) + sum(len(b) for b in buffers or [])
        if buffers is None:
            self._refuse("a widget message with buffers that are not base64")
        elif comm_id in self.manager.comms:
            self._refuse("a widget message addressed to the kernel's own widgets")
        elif size > self.limits.max_message:
            self._refuse(f"a widget message of {size:,} bytes (over "
                         f"{self.limits.max_message:,})")
        elif not (self.messages.take(1) and self.bytes.take(size)):
            self.dropped += 1
        else:
            handler = {"comm_open": self._open, "comm_msg": self._msg,
                       "comm_close": self._close}[frame["type"]]
            handler(frame, buffers or [])
        self._notice()

    def _open(self, frame: dict[str, Any], buffers: list[bytes]) -> None:
        comm_id, data = frame["comm_id"], frame["data"]
        if frame["target_name"] != WIDGET_TARGET:
            self._refuse(f"a comm for {clean_text(frame['target_name'], 80)!r} (only "
                         "widgets are bridged)")
            return
        if comm_id in self.models or not isinstance(data.get("state"), dict):
            self._refuse("a widget that reuses an id or has no state")
            return
        if len(self.models) >= MAX_MODELS:
            self._refuse(f"more than {MAX_MODELS:,} open widgets (close some: w.close())")
            return
        model, verdict = self.guard.opening(data["state"], self.models)
        if verdict.fatal:
            self._refuse(verdict.fatal)
            return
        checked, kept = self._data(model, data, verdict, buffers)
        content = {"comm_id": comm_id, "target_name": WIDGET_TARGET, "target_module": None,
                   "data": checked}
        self.models[comm_id] = model
        self.publish("comm_open", content, kept, _metadata(frame["metadata"]))

    def _msg(self, frame: dict[str, Any], buffers: list[bytes]) -> None:
        comm_id, data = frame["comm_id"], frame["data"]
        model = self.models.get(comm_id)
        if model is None:
            return  # never opened, or refused: already said
        kept = buffers
        if isinstance(data.get("state"), dict):
            verdict = self.guard.update(model, data["state"], self.models)
            data, kept = self._data(model, data, verdict, buffers)
        self.publish("comm_msg", {"comm_id": comm_id, "data": data}, kept,
                      _metadata(frame["metadata"]))

    def _close(self, frame: dict[str, Any], buffers: list[bytes]) -> None:
        if self.models.pop(frame["comm_id"], None) is not None:
            self.publish("comm_close", {"comm_id": frame["comm_id"], "data": {}}, [])

    def _data(self, model: Model, data: dict[str, Any], verdict: Verdict,
              buffers: list[bytes]) -> tuple[dict[str, Any], list[bytes]]:
        """The message's data with the checked state, and only the buffers it may keep."""
        state = verdict.state
        if model.name == "OutputModel" and isinstance(state.get("msg_id"), str):
            state["msg_id"] = self._parent_id() if state["msg_id"] else ""
        paths = data.get("buffer_paths")
        kept_paths: list[Any] = []
        kept: list[bytes] = []
        if isinstance(paths, list) and len(paths) == len(buffers):
            for path, buf in zip(paths, buffers, strict=True):
                if isinstance(path, list) and path and path[0] not in verdict.refused and \
                        not (model.url_format and path[0] == "value"):
                    kept_paths.append(path)
                    kept.append(buf)
        refused = verdict.refused + (["value"] if model.url_format and any(
            isinstance(p, list) and p[:1] == ["value"] for p in paths or []) else [])
        if refused:
            self._refuse(f"widget fields the browser would fetch or that reach outside the "
                         f"sandbox's widgets ({', '.join(sorted(set(refused))[:5])})")
        self.refused.extend(verdict.notes)
        out = {k: v for k, v in data.items() if k not in ("state", "buffer_paths")}
        return {**out, "state": state, "buffer_paths": kept_paths}, kept

    def _parent_id(self) -> str:
        parent = self.kernel.get_parent()
        msg_id = parent.get("header", {}).get("msg_id") if isinstance(parent, dict) else None
        return msg_id if isinstance(msg_id, str) else ""

    def publish(self, msg_type: str, content: dict[str, Any], buffers: list[bytes],
                 metadata: dict[str, Any] | None = None) -> None:
        """On IOPub, as ipykernel's comms send: the widget protocol version in the
        message's metadata."""
        kernel = self.kernel
        self.published += 1
        kernel.send_response(kernel.paced_iopub or kernel.iopub_socket, msg_type, content,
                             buffers=buffers or None, metadata=metadata or {})

    async def settle(self, published_before: int) -> None:
        """Hold a widget cell's reply for a moment: nbclient answers an Output widget's
        captured output with a comm message on the shell socket, and a reply that arrives
        while it sends is missed until its timeout (nbclient issue 312)."""
        if self.published != published_before:
            await asyncio.sleep(_SETTLE_S)

    def _refuse(self, what: str) -> None:
        self.refused.append(f"[sandbox] refused {what}")

    def _notice(self, force: bool = False) -> None:
        """Refusals and drops, at most one line every few seconds (and at a cell's end)."""
        now = time.monotonic()
        if not (self.refused or self.dropped) or (not force and
                                                   now - self._noticed < _NOTICE_EVERY_S):
            return
        self._noticed = now
        lines = list(dict.fromkeys(self.refused))[:10]
        if self.dropped:
            lines.append(f"[sandbox] {self.dropped:,} widget messages from the sandbox were "
                         f"dropped: over {self.limits.rate:g} per second "
                         "(c.Sandbox.widget_rate)")
        self.refused, self.dropped = [], 0
        self.kernel.stream("stderr", "\n".join(lines) + "\n")

    def flush_notice(self) -> None:
        self._notice(force=True)


def bridge_comms(kernel: SandboxKernel, manager: Any) -> CommBridge:
    """The kernel's bridge, from its settings, routed into its handlers and executor."""
    settings = kernel.settings
    guard = StateGuard(kernel.policy, frozenset(settings.widget_modules))
    bridge = CommBridge(kernel, manager, guard, CommLimits(
        rate=max(1.0, settings.widget_rate), bytes_rate=max(1.0, settings.widget_rate) * 40_000))
    bridge.install()
    bridge.relay = kernel.executor.relay
    kernel.executor.comms = bridge
    return bridge


def _metadata(md: Any) -> dict[str, Any]:
    version = md.get("version") if isinstance(md, dict) else None
    return {"version": clean_text(version, 20)} if isinstance(version, str) else {}
