"""The narrow interfaces the executor (execution.py) sees the kernel and its comms through."""

from __future__ import annotations

from typing import Any, Protocol

from ..sandbox.session import AsyncSession


class CommSink(Protocol):
    """Where a cell's comm frames go (comm_bridge.py), and how widget views are checked."""

    def watch(self, session: AsyncSession) -> None: ...

    def from_sandbox(self, frame: dict[str, Any]) -> None: ...

    def split_view(self, data: Any) -> tuple[Any, dict[str, Any] | None]: ...

    def flush_notice(self) -> None: ...

    def interpreter_lost(self) -> None: ...


class Frontend(Protocol):
    """What the executor needs from the kernel: publishing, pacing, asking the user."""

    def publish(self, msg_type: str, content: dict[str, Any]) -> None: ...

    async def iopub_room(self) -> None: ...

    def iopub_lost(self) -> int: ...

    async def ask(self, prompt: str, password: bool = False) -> str | None: ...
