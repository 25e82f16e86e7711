"""Encoding, strict decoding and splitting of contract frames (both sides import this).

Every frame is parsed in full and checked against its message's fields: duplicate keys,
unknown fields, wrong types, values out of bounds, excessive nesting and oversize lines
are all a FrameError, never a crash (docs/architecture.md, "Strict frames").
"""

from __future__ import annotations

import json
import math
from typing import Any

from .protocol import CHUNK_BYTES, MAX_DEPTH, MAX_FRAME_BYTES, RAW_FRAMES, Field

Frame = dict[str, Any]
Schema = dict[str, dict[str, Field]]


class FrameError(ValueError):
    """Bytes that are not a valid frame of the contract.

    From FrameReader.feed, `frames` holds the valid frames that came before the bad one.
    """

    frames: list[dict[str, Any]] = []


def encode(frame: Frame) -> bytes:
    """One frame as a newline-terminated JSON line, within the size bound."""
    try:
        line = json.dumps(frame, ensure_ascii=False, separators=(",", ":"),
                          allow_nan=False).encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate (print('\ud800')): escape it
        line = json.dumps(frame, ensure_ascii=True, separators=(",", ":"),
                          allow_nan=False).encode("ascii")
    if len(line) + 1 > MAX_FRAME_BYTES:
        raise FrameError(f"frame of {len(line)} bytes exceeds {MAX_FRAME_BYTES}")
    return line + b"\n"


def encode_chunk(fid: int, data: bytes | memoryview) -> bytes:
    """A chunk header; the caller sends the raw bytes right after it."""
    if len(data) > CHUNK_BYTES:
        raise FrameError(f"chunk of {len(data)} bytes exceeds {CHUNK_BYTES}")
    return b'{"id":%d,"type":"chunk","size":%d}\n' % (fid, len(data))


def encode_stream(frame: Frame) -> bytes:
    """A stream frame as an ``out`` header and its text's UTF-8 bytes: no JSON around bulk
    output (a lone surrogate is carried as-is and read back as U+FFFD)."""
    data: bytes = frame["text"].encode("utf-8", "surrogatepass")
    head: bytes = b'{"id":%d,"type":"out","name":"%s","size":%d}\n' % (
        frame["id"], frame["name"].encode("ascii"), len(data))
    return head + data


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise FrameError("duplicate key in frame")
    return obj


def _const(name: str) -> Any:
    raise FrameError(f"{name} is not valid JSON")


def parse(line: bytes) -> Frame:
    """JSON object with an id and a type; no duplicate keys, NaN or deep nesting."""
    if len(line) > MAX_FRAME_BYTES:
        raise FrameError(f"frame of {len(line)} bytes exceeds {MAX_FRAME_BYTES}")
    try:
        frame = json.loads(line, object_pairs_hook=_pairs, parse_constant=_const)
    except RecursionError:
        raise FrameError("frame is nested too deeply") from None
    except (ValueError, UnicodeDecodeError) as exc:
        if isinstance(exc, FrameError):
            raise
        raise FrameError(f"frame is not JSON ({str(exc)[:80]})") from None
    if not isinstance(frame, dict):
        raise FrameError("frame is not a JSON object")
    fid, ftype = frame.get("id"), frame.get("type")
    if type(fid) is not int or not 0 <= fid < 2**53:
        raise FrameError("frame id must be a non-negative integer")
    if not isinstance(ftype, str):
        raise FrameError("frame type must be a string")
    return frame


def _depth_ok(value: Any, budget: int) -> bool:
    stack = [(value, 1)]
    while stack:
        v, d = stack.pop()
        if d > budget:
            return False
        if isinstance(v, dict):
            stack.extend((x, d + 1) for x in v.values())
        elif isinstance(v, list):
            stack.extend((x, d + 1) for x in v)
    return True


def _check(f: Field, v: Any) -> bool:
    k = f.kind
    if k == "str":
        return isinstance(v, str) and len(v) <= f.hi
    if k == "int":
        return type(v) is int and f.lo <= v <= f.hi
    if k == "num":
        return type(v) in (int, float) and math.isfinite(v) and f.lo <= v <= f.hi
    if k == "bool":
        return type(v) is bool
    if k == "enum":
        return isinstance(v, str) and v in f.choices
    if k == "strs":
        return isinstance(v, list) and len(v) <= f.hi and all(isinstance(x, str) for x in v)
    if k in ("strmap", "envmap"):
        ok = (str,) if k == "strmap" else (str, type(None))
        return isinstance(v, dict) and len(v) <= f.hi and all(
            isinstance(x, ok) for x in v.values())
    if k == "obj":
        return isinstance(v, dict) and len(v) <= f.hi and _depth_ok(v, MAX_DEPTH)
    if k == "objs":
        return isinstance(v, list) and len(v) <= f.hi and all(
            isinstance(x, dict) for x in v) and _depth_ok(v, MAX_DEPTH)
    return False


def check_fields(ftype: str, fields: dict[str, Field], frame: dict[str, Any],
                 envelope: tuple[str, ...] = ("id", "type")) -> None:
    """Every field present (unless optional), of its kind and in bounds; no others."""
    for name, spec in fields.items():
        if name not in frame:
            if spec.optional:
                continue
            raise FrameError(f"{ftype} frame lacks {name!r}")
        value = frame[name]
        if value is None and spec.nullable:
            continue
        if not _check(spec, value):
            raise FrameError(f"{ftype} frame: {name!r} is not a valid {spec.kind}")
    extra = [k for k in frame if k not in fields and k not in envelope]
    if extra:
        raise FrameError(f"{ftype} frame has unknown field {extra[0][:40]!r}")


def decode(line: bytes, schema: Schema) -> Frame:
    """Parse one line and check it against the message of its type in `schema`."""
    frame = parse(line)
    fields = schema.get(frame["type"])
    if fields is None:
        raise FrameError(f"unexpected frame type {frame['type'][:40]!r}")
    check_fields(frame["type"], fields, frame)
    return frame


class FrameReader:
    """Splits a byte stream into frames; a chunk or out header takes the next `size` bytes.

    Each chunk frame is returned with its bytes under ``payload``, copied once, and each
    out frame as the stream frame it stands for. Partial lines are bounded by
    MAX_FRAME_BYTES. With `reuse`, chunk bytes gather in one buffer the reader keeps, which
    the caller may read into straight (`room`, `filled`); the payload `filled` returns is a
    view of it, valid until the next call (for a consumer done with a chunk when it returns).
    The buffer is made at the first chunk: an idle sandbox's agent does not hold it.
    """

    def __init__(self, schema: Schema, reuse: bool = False) -> None:
        self.schema = schema
        self.buf = bytearray()  # the start of a line with no newline yet
        self.pending: Frame | None = None  # a chunk header waiting for its bytes
        self.parts: list[memoryview] = []  # the pending chunk's bytes so far
        self.have = 0
        self.reuse = reuse
        self.body: memoryview | None = None  # with reuse: made at the first chunk (1 MiB)

    def feed(self, data: bytes) -> list[Frame]:
        out: list[Frame] = []
        try:
            self._feed(bytes(data) if not isinstance(data, bytes) else data, out)
        except FrameError as exc:
            exc.frames = out
            raise
        return out

    def room(self) -> memoryview | None:
        """With `reuse`, the rest of the pending chunk's buffer, to read straight into."""
        if self.body is None or self.pending is None:
            return None
        return self.body[self.have : self.pending["size"]]

    def filled(self, n: int) -> list[Frame]:
        """`n` bytes were read into `room()`: the chunk, if that completed it."""
        assert self.pending is not None and self.have + n <= self.pending["size"]
        self.have += n
        out: list[Frame] = []
        if self.have == self.pending["size"]:
            self._complete(out)
        return out

    def _feed(self, data: bytes, out: list[Frame]) -> None:
        view, pos, n = memoryview(data), 0, len(data)
        while pos < n:
            if self.pending is not None:
                pos = self._take(view, pos, out)
                continue
            nl = data.find(b"\n", pos)
            if nl < 0:
                self.buf += view[pos:]
                if len(self.buf) > MAX_FRAME_BYTES:
                    self.buf.clear()
                    raise FrameError(f"a frame exceeded {MAX_FRAME_BYTES} bytes")
                return
            line = data[pos:nl]
            if self.buf:
                line, self.buf = bytes(self.buf + line), bytearray()
            pos = nl + 1
            frame = decode(line, self.schema)
            if frame["type"] not in RAW_FRAMES:
                out.append(frame)
            elif frame["size"] == 0:
                out.append(_raw_frame(frame, b""))
            else:
                if self.reuse and self.body is None:
                    self.body = memoryview(bytearray(CHUNK_BYTES))
                self.pending = frame

    def _take(self, view: memoryview, pos: int, out: list[Frame]) -> int:
        """Bytes of the pending chunk from `view` at `pos`; the position after them."""
        assert self.pending is not None
        take: int = min(self.pending["size"] - self.have, len(view) - pos)
        if self.body is not None:
            self.body[self.have : self.have + take] = view[pos : pos + take]
        else:
            self.parts.append(view[pos : pos + take])
        self.have += take
        if self.have == self.pending["size"]:
            self._complete(out, view=False)  # more chunks may follow in this call
        return pos + take

    def _complete(self, out: list[Frame], view: bool = True) -> None:
        assert self.pending is not None
        if self.body is not None:
            payload: bytes | memoryview = self.body[: self.have]
            payload = payload if view else bytes(payload)
        else:
            parts, self.parts = self.parts, []
            payload = bytes(parts[0]) if len(parts) == 1 else b"".join(parts)
        out.append(_raw_frame(self.pending, payload))
        self.pending, self.have = None, 0


def _raw_frame(header: Frame, payload: bytes | memoryview) -> Frame:
    """A chunk with its bytes under ``payload``; an ``out`` frame read as a stream frame."""
    if header["type"] == "out":
        return {"id": header["id"], "type": "stream", "name": header["name"],
                "text": str(payload, "utf-8", "replace")}
    return {**header, "payload": payload}
