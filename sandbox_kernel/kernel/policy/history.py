"""The kernel's execution history (history_request), bounded.

Each entry keeps its output text cut to `max_output` characters, and the oldest entries
go once the total passes `max_total`, so a notebook that prints large results cannot make
the kernel process grow without end.
"""

from __future__ import annotations

import fnmatch
import re
from collections import deque
from typing import Any

Entry = tuple[int, int, str, str]


class History:
    """(session, line, source, output) entries, oldest first."""

    def __init__(self, max_output: int = 10_000, max_total: int = 16 << 20,
                 max_entries: int = 10_000) -> None:
        self.max_output = max_output
        self.max_total = max_total
        self.max_entries = max_entries
        self._entries: deque[Entry] = deque()
        self.total = 0

    def add(self, session: int, line: int, source: object, output: object) -> None:
        """Record a cell (a malformed request's non-text source is kept as its str)."""
        source = source if isinstance(source, str) else str(source)
        output = output if isinstance(output, str) else ""
        if len(output) > self.max_output:
            output = output[: self.max_output] + "…"
        source = source[: self.max_total // 2]
        self._entries.append((session, line, source, output))
        self.total += len(source) + len(output)
        while self._entries and (self.total > self.max_total or
                                 len(self._entries) > self.max_entries):
            _, _, src, out = self._entries.popleft()
            self.total -= len(src) + len(out)

    def entries(self) -> list[Entry]:
        return list(self._entries)

    def query(self, access: str, output: bool, start: int | None = None,
              stop: int | None = None, n: int | None = None, pattern: str | None = None,
              unique: bool = False) -> list[tuple[int, int, Any]]:
        items = list(self._entries)
        if access == "tail":
            items = items[-n:] if n else items
        elif access == "range":
            lo, hi = start or 0, stop if stop is not None else 1 << 62
            items = [h for h in items if lo <= h[1] < hi]
        elif access == "search":
            matcher = re.compile(fnmatch.translate(pattern or "*"), re.S)
            items = [h for h in items if matcher.match(h[2])]
            if unique:
                seen: set[str] = set()
                kept = []
                for h in reversed(items):
                    if h[2] not in seen:
                        seen.add(h[2])
                        kept.append(h)
                items = list(reversed(kept))
            if n:
                items = items[-n:]
        else:
            items = []
        return [(s, line, (src, out) if output else src) for s, line, src, out in items]
