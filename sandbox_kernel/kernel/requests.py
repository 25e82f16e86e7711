"""The standard Jupyter requests on top of the message loop: each parses its content, awaits
the subclass's `do_*` coroutine and sends the reply (docs/architecture.md, "The kernel
process")."""

from __future__ import annotations

import os
import signal
from abc import abstractmethod
from typing import Any

from .base import KernelBase

#: The protocol version the kernel implements (kernel_info's), as ipykernel 7 reports.
KERNEL_PROTOCOL = "5.3"


class JupyterKernel(KernelBase):
    """Shell and control requests as ipykernel answers them; no subshells, no debugger."""

    implementation = "kernel"
    implementation_version = ""
    banner = ""
    language_info: dict[str, Any] = {}

    async def execute_request(self, stream: Any, ident: list[bytes],
                              parent: dict[str, Any]) -> None:
        content = parent["content"]
        code = content.get("code")  # not a str: do_execute answers with an error reply
        silent = bool(content.get("silent", False))
        metadata = self.init_metadata(parent)
        if not silent:
            self.execution_count += 1
            self.send(self.iopub_socket, "execute_input", {
                "code": code, "execution_count": self.execution_count}, parent,
                self.topic("execute_input"))
        cell_meta = parent.get("metadata") or {}
        reply = await self.do_execute(
            code, silent, bool(content.get("store_history", not silent)),
            content.get("user_expressions") or {}, bool(content.get("allow_stdin", False)),
            cell_meta=cell_meta, cell_id=cell_meta.get("cellId"))
        metadata = self.finish_metadata(parent, metadata, reply)
        self.send(stream, "execute_reply", reply, parent, ident, metadata=metadata)
        if not silent and reply.get("status") == "error" and content.get("stop_on_error", True):
            await self._abort_waiting()

    @abstractmethod
    async def do_execute(self, code: str, silent: bool, store_history: bool = True,
                         user_expressions: dict[str, Any] | None = None,
                         allow_stdin: bool = False, *, cell_meta: Any = None,
                         cell_id: Any = None) -> dict[str, Any]: ...

    async def complete_request(self, stream: Any, ident: list[bytes],
                               parent: dict[str, Any]) -> None:
        c = parent["content"]
        reply = await self.do_complete(c.get("code", ""), c.get("cursor_pos"))
        self.send(stream, "complete_reply", reply, parent, ident)

    @abstractmethod
    async def do_complete(self, code: str, cursor_pos: int | None) -> dict[str, Any]: ...

    async def inspect_request(self, stream: Any, ident: list[bytes],
                              parent: dict[str, Any]) -> None:
        c = parent["content"]
        reply = await self.do_inspect(c.get("code", ""), c.get("cursor_pos"),
                                      c.get("detail_level", 0))
        self.send(stream, "inspect_reply", reply, parent, ident)

    @abstractmethod
    async def do_inspect(self, code: str, cursor_pos: int | None,
                         detail_level: int = 0) -> dict[str, Any]: ...

    async def is_complete_request(self, stream: Any, ident: list[bytes],
                                  parent: dict[str, Any]) -> None:
        reply = await self.do_is_complete(parent["content"].get("code", ""))
        self.send(stream, "is_complete_reply", reply, parent, ident)

    @abstractmethod
    async def do_is_complete(self, code: str) -> dict[str, Any]: ...

    async def history_request(self, stream: Any, ident: list[bytes],
                              parent: dict[str, Any]) -> None:
        c = parent["content"]
        reply = await self.do_history(
            c.get("hist_access_type", "tail"), bool(c.get("output")), bool(c.get("raw")),
            session=c.get("session"), start=c.get("start"), stop=c.get("stop"), n=c.get("n"),
            pattern=c.get("pattern"), unique=bool(c.get("unique")))
        self.send(stream, "history_reply", reply, parent, ident)

    @abstractmethod
    async def do_history(self, hist_access_type: str, output: bool, raw: bool,
                         session: int | None = None, start: int | None = None,
                         stop: int | None = None, n: int | None = None,
                         pattern: str | None = None, unique: bool = False) -> dict[str, Any]:
        ...

    @property
    def kernel_info(self) -> dict[str, Any]:
        return {"protocol_version": KERNEL_PROTOCOL, "implementation": self.implementation,
                "implementation_version": self.implementation_version,
                "language_info": self.language_info, "banner": self.banner,
                "help_links": [], "supported_features": []}

    async def kernel_info_request(self, stream: Any, ident: list[bytes],
                                  parent: dict[str, Any]) -> None:
        self.send(stream, "kernel_info_reply", {"status": "ok", **self.kernel_info}, parent,
                  ident)

    async def connect_request(self, stream: Any, ident: list[bytes],
                              parent: dict[str, Any]) -> None:
        self.send(stream, "connect_reply", {**self.ports, "status": "ok"}, parent, ident)

    async def comm_info_request(self, stream: Any, ident: list[bytes],
                                parent: dict[str, Any]) -> None:
        self.send(stream, "comm_info_reply", {"status": "ok", "comms": {}}, parent, ident)

    async def interrupt_request(self, stream: Any, ident: list[bytes],
                                parent: dict[str, Any]) -> None:
        """As ipykernel: the kernel signals itself, so both interrupt modes act alike."""
        os.kill(os.getpid(), signal.SIGINT)
        self.send(stream, "interrupt_reply", {"status": "ok"}, parent, ident)

    async def shutdown_request(self, stream: Any, ident: list[bytes],
                               parent: dict[str, Any]) -> None:
        content = await self.do_shutdown(bool(parent["content"].get("restart", False)))
        self.send(stream, "shutdown_reply", content, parent, ident)
        self.send(self.iopub_socket, "shutdown_reply", content, parent, self.topic("shutdown"))
        self.stop()

    @abstractmethod
    async def do_shutdown(self, restart: bool) -> dict[str, Any]: ...

    @abstractmethod
    async def usage_request(self, stream: Any, ident: list[bytes],
                            parent: dict[str, Any]) -> None: ...
