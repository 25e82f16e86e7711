"""Completion, inspection and is_complete, answered from inside the sandbox.

The kernel parses the cell first (a `%%node` cell is completed by Node), asks the
sandbox, and passes on only well-formed answers; anything else is an empty answer.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from ..errors import SandboxError, UsageError
from .cells import parse_cell
from .execution import with_notice
from .launcher import Launcher
from .policy import OutputPolicy, clean_text

log = logging.getLogger(__name__)
#: How long a completion waits for a sandbox that is still starting.
_WAIT_S = 30.0


def _ends_with_newline(cell: str) -> bool:
    for ch in reversed(cell):
        if ch == "\n":
            return True
        if ch.strip():
            return False
    return False


def cell_magic_status(code: str) -> dict[str, Any] | None:
    """is_complete of a cell magic as ipykernel answers it (IPython's check_complete):
    incomplete until the cell ends with a blank line, so a console's Enter adds a line."""
    cell = code if _ends_with_newline(code) else code + "\n"
    lines = cell.splitlines(keepends=True)
    while lines and not lines[0].strip():
        lines.pop(0)
    if not lines or not lines[0].lstrip().startswith("%%"):
        return None
    last = next((line for line in reversed(lines) if line.strip()), "")
    if lines[-1].strip() or last.rstrip("\n").endswith("\\"):
        indent = lines[-1][:len(lines[-1]) - len(lines[-1].lstrip(" \t"))]
        return {"status": "incomplete", "indent": " " * len(indent.replace("\t", " " * 4))}
    return {"status": "complete"}


class Introspection:
    def __init__(self, launcher: Launcher, policy: OutputPolicy, language: str) -> None:
        self.launcher = launcher
        self.policy = policy
        self.language = language

    async def _ask(self, method: str, *args: Any) -> dict[str, Any] | None:
        try:
            session = await asyncio.wait_for(self.launcher.session(), _WAIT_S)
            result: dict[str, Any] = await getattr(session, method)(*args)
            return result
        except (SandboxError, asyncio.TimeoutError) as exc:
            log.info("%s failed: %s", method, exc)
            return None

    def _target(self, code: str, cursor_pos: int | None) -> tuple[str, str, int, int]:
        """(language, code, cursor, offset) of the cell part a request is about."""
        pos = len(code) if cursor_pos is None else max(0, min(cursor_pos, len(code)))
        first, nl, rest = code.partition("\n")
        name = first.strip()[2:] if first.strip().startswith("%%") else ""
        if nl and name in ("node", "python", "python3") and pos > len(first):
            offset = len(first) + 1
            return ("node" if name == "node" else "python"), rest, pos - offset, offset
        return self.language, code, pos, 0

    async def complete(self, code: str, cursor_pos: int | None) -> dict[str, Any]:
        lang, body, pos, offset = self._target(code, cursor_pos)
        reply = await self._ask("complete", body, pos, lang)
        if reply is None:
            return {"status": "ok", "matches": [], "cursor_start": pos + offset,
                    "cursor_end": pos + offset, "metadata": {}}
        return {"status": "ok", "matches": reply["matches"][:1000],
                "cursor_start": reply["cursor_start"] + offset,
                "cursor_end": reply["cursor_end"] + offset, "metadata": {}}

    async def inspect(self, code: str, cursor_pos: int | None,
                      detail_level: int = 0) -> dict[str, Any]:
        lang, body, pos, _ = self._target(code, cursor_pos)
        reply = await self._ask("inspect", body, pos, 1 if detail_level else 0, lang)
        if reply is None:
            return {"status": "ok", "found": False, "data": {}, "metadata": {}}
        clean = self.policy.clean(reply["data"], reply["metadata"])
        return {"status": "ok", "found": reply["found"] is True, "data": with_notice(clean),
                "metadata": clean.metadata}

    async def is_complete(self, code: str) -> dict[str, Any]:
        magic = cell_magic_status(code)
        if magic is not None:
            return magic
        try:
            cell = parse_cell(code, self.language)
        except UsageError:
            return {"status": "invalid"}
        if isinstance(cell, tuple) or cell.lang == "bash":
            return {"status": "complete"}
        reply = await self._ask("is_complete", cell.body, cell.lang)
        if reply is None:
            return {"status": "unknown"}
        out: dict[str, Any] = {"status": reply["status"]}
        if reply["status"] == "incomplete":
            out["indent"] = clean_text(reply.get("indent", ""), 100)
        return out
