"""One cell's output budget: data and metadata of every output count against one cap.

Streams are cut where the cap falls; a rich output (display, update, result, pager page)
is shown whole or not at all; an error is always shown, bounded. What did not fit, what
was removed and what could not be delivered ends as one summary line per kind.
"""

from __future__ import annotations

from .core import Note, notice_line

#: At most this many "removed from this output" lines per cell; the rest are counted.
MAX_NOTICES = 20
#: An error traceback is kept to this many characters (its last lines).
MAX_ERROR = 256 * 1024


class OutputBudget:
    """Counts one cell's output against `cap` characters (`label` names it, e.g. 4 MB)."""

    def __init__(self, cap: int, label: str, raise_hint: str = "") -> None:
        self.cap = cap
        self.label = label
        self.raise_hint = raise_hint
        self.used = 0
        self.dropped_chars = 0
        self.dropped_outputs = 0
        self.notices = 0
        self.hidden_notices = 0
        self.undelivered = 0

    @property
    def room(self) -> int:
        return max(0, self.cap - self.used)

    def take_text(self, text: str) -> str:
        """The part of a stream's text that still fits (the rest is counted as dropped)."""
        room = self.room
        if len(text) > room:
            self.dropped_chars += len(text) - room
            text = text[:room]
        self.used += len(text)
        return text

    def admit(self, size: int) -> bool:
        """Whether a rich output of `size` characters fits; it is counted either way."""
        if size <= self.room:
            self.used += size
            return True
        self.dropped_outputs += 1
        return False

    def error(self, ename: str, evalue: str, traceback: list[str]) -> list[str]:
        """An error's traceback bounded to its last MAX_ERROR characters (always shown)."""
        kept: list[str] = []
        total = len(ename) + len(evalue)
        for line in reversed(traceback):
            if total + len(line) > MAX_ERROR:
                kept.append(f"[sandbox] {len(traceback) - len(kept)} earlier traceback "
                            "lines were not shown")
                break
            kept.append(line)
            total += len(line)
        self.used += total
        return kept[::-1]

    def notice(self, notes: tuple[Note, ...]) -> str | None:
        """The visible line for an output's removed content, or None past MAX_NOTICES."""
        if not notes:
            return None
        if self.notices >= MAX_NOTICES:
            self.hidden_notices += 1
            return None
        self.notices += 1
        return notice_line(notes)

    def summary(self, more_dropped_chars: int = 0, hint: str | None = None) -> list[str]:
        """Lines for the end of the cell: truncation, hidden notices, lost messages."""
        lines = []
        chars = self.dropped_chars + more_dropped_chars
        if chars or self.dropped_outputs:
            what = [f"{chars:,} more characters"] if chars else []
            if self.dropped_outputs:
                what.append(f"{self.dropped_outputs:,} more outputs")
            if hint is None:
                hint = f"raise with {self.raise_hint}" if self.raise_hint else ""
            lines.append(f"[sandbox] output truncated after {self.label}: "
                         f"{' and '.join(what)} were not shown" + (f" ({hint})" if hint else ""))
        if self.hidden_notices:
            lines.append(f"[sandbox] {self.hidden_notices:,} more outputs had content removed "
                         "by the output policy (their notices were not shown)")
        if self.undelivered:
            lines.append(f"[sandbox] {self.undelivered:,} messages could not be delivered: "
                         "the frontend stopped reading output")
        return lines
