"""Wire format between the host and the in-container agent (imported by both sides).

One JSON object per line (NDJSON), UTF-8. Every frame has an integer ``id`` (the request it
belongs to; 0 for unsolicited frames) and a string ``type``. Frames are size-bounded and
validated on both ends: the agent runs next to untrusted code, so the host treats every
frame as hostile input.
"""

from __future__ import annotations

import json
from typing import Any

PROTOCOL_VERSION = 1

#: Largest encoded frame, newline included, either direction.
MAX_FRAME_BYTES = 8 * 1024 * 1024
#: Raw bytes of file content carried by one frame (base64 makes it 4/3 larger).
FILE_CHUNK_BYTES = 1024 * 1024

#: Requests the host may send.
REQUEST_TYPES = frozenset(
    {
        "hello",
        "run",
        "input_reply",
        "interrupt",
        "exec",
        "fs",
        "stats",
        "complete",
        "inspect",
        "is_complete",
        "get_var",
        "set_var",
        "restart",
        "set_env",
        "shutdown",
    }
)

#: Frames the agent may send.
EVENT_TYPES = frozenset(
    {
        "hello",
        "stream",
        "display",
        "clear",
        "result",
        "error",
        "input_request",
        "payload",
        "notice",
        "data",
        "reply",
        "done",
        "log",
    }
)

#: How a cell or command ended, as reported in a ``done`` frame.
VERDICTS = frozenset({"ok", "error", "timeout", "cpu_time", "oom", "interrupted", "crashed"})


class FrameError(ValueError):
    """A frame that is not valid protocol (malformed, oversized or of an unknown type)."""


def encode(frame: dict[str, Any]) -> bytes:
    """Serialize one frame to a newline-terminated line, enforcing the size bound."""
    try:
        line = json.dumps(frame, ensure_ascii=False, separators=(",", ":")).encode(
            "utf-8", "surrogateescape"
        )
    except UnicodeEncodeError:  # a lone surrogate (e.g. print('\ud800')): escape it
        line = json.dumps(frame, ensure_ascii=True, separators=(",", ":")).encode("ascii")
    if len(line) + 1 > MAX_FRAME_BYTES:
        raise FrameError(f"frame of {len(line)} bytes exceeds {MAX_FRAME_BYTES}")
    return line + b"\n"


def decode(line: bytes, allowed: frozenset[str]) -> dict[str, Any]:
    """Parse and validate one line; raise FrameError on anything unexpected."""
    if len(line) > MAX_FRAME_BYTES:
        raise FrameError(f"frame of {len(line)} bytes exceeds {MAX_FRAME_BYTES}")
    try:
        frame = json.loads(line.decode("utf-8", "surrogateescape"))
    except ValueError as exc:
        raise FrameError(f"frame is not JSON: {exc}") from None
    if not isinstance(frame, dict):
        raise FrameError("frame is not a JSON object")
    fid = frame.get("id")
    ftype = frame.get("type")
    if not isinstance(fid, int) or isinstance(fid, bool) or fid < 0:
        raise FrameError("frame id must be a non-negative integer")
    if not isinstance(ftype, str) or ftype not in allowed:
        raise FrameError(f"unknown frame type {str(ftype)[:40]!r}")
    return frame


class LineBuffer:
    """Splits a byte stream into frames, scanning each byte once, bounding partial lines."""

    def __init__(self, limit: int = MAX_FRAME_BYTES) -> None:
        self.buf = bytearray()
        self.limit = limit

    def feed(self, data: bytes) -> list[bytes]:
        """Complete lines (newline included) now available; FrameError if one is too long."""
        scan = len(self.buf)
        self.buf += data
        lines = []
        start = 0
        while True:
            nl = self.buf.find(b"\n", max(start, scan))
            if nl < 0:
                break
            lines.append(bytes(self.buf[start : nl + 1]))
            start = nl + 1
        if start:
            del self.buf[:start]
        if len(self.buf) > self.limit:
            self.buf.clear()
            raise FrameError(f"a frame exceeded {self.limit} bytes")
        return lines
