"""NDJSON frames between host and agent: bounded, validated, hostile input refused."""

from __future__ import annotations

import json

import pytest

from sandbox_kernel.agent.protocol import (
    EVENT_TYPES,
    MAX_FRAME_BYTES,
    REQUEST_TYPES,
    FrameError,
    decode,
    encode,
)


@pytest.mark.parametrize("frame", [
    {"id": 0, "type": "hello", "version": 1},
    {"id": 7, "type": "stream", "name": "stdout", "text": "line\nnext\r\n\t\u2028end"},
    {"id": 2**53, "type": "done", "verdict": "ok", "nested": {"a": [1, 2.5, None, True]}},
    {"id": 3, "type": "data", "b64": "AAEC"},
    {"id": 4, "type": "stream", "name": "stdout", "text": "\U0001f600 \u00fc \u202e e\u0301"},
    {"id": 5, "type": "reply", "content": {"entries": [{"name": "bad\udc80name"}]}},
])
def test_roundtrip(frame: dict) -> None:
    line = encode(frame)
    assert line.endswith(b"\n")
    assert line.count(b"\n") == 1, "a frame is exactly one line"
    assert decode(line, EVENT_TYPES) == frame
    assert decode(line.rstrip(b"\n"), EVENT_TYPES) == frame


def test_request_types_roundtrip() -> None:
    for ftype in sorted(REQUEST_TYPES):
        frame = {"id": 1, "type": ftype}
        assert decode(encode(frame), REQUEST_TYPES) == frame


def test_non_ascii_is_utf8_not_escaped() -> None:
    assert "\u00fc".encode() in encode({"id": 1, "type": "stream", "text": "\u00fc"})


def _padded(total: int) -> dict:
    """A stream frame whose encoded line (newline included) is exactly `total` bytes."""
    base = len(encode({"id": 1, "type": "stream", "text": ""}))
    return {"id": 1, "type": "stream", "text": "x" * (total - base)}


def test_encode_size_bound_exact() -> None:
    assert len(encode(_padded(MAX_FRAME_BYTES))) == MAX_FRAME_BYTES
    with pytest.raises(FrameError, match="exceeds"):
        encode(_padded(MAX_FRAME_BYTES + 1))


def test_encode_bound_counts_bytes_not_characters() -> None:
    base = len(encode({"id": 1, "type": "stream", "text": ""}))
    n = (MAX_FRAME_BYTES - base) // 4 + 1  # 4 UTF-8 bytes each: just over the bound
    with pytest.raises(FrameError):
        encode({"id": 1, "type": "stream", "text": "\U0001f600" * n})


def test_decode_oversized() -> None:
    line = json.dumps({"id": 1, "type": "stream", "text": "x" * MAX_FRAME_BYTES}).encode()
    with pytest.raises(FrameError, match="exceeds"):
        decode(line, EVENT_TYPES)


@pytest.mark.parametrize("line", [
    b"[1, 2]", b'"hello"', b"1", b"null", b"true", b"[]",
])
def test_decode_non_object(line: bytes) -> None:
    with pytest.raises(FrameError, match="not a JSON object"):
        decode(line, EVENT_TYPES)


@pytest.mark.parametrize("line", [
    b"", b"\n", b"{", b"{'id': 1}", b'{"id": 1, "type": "done"', b"\xff\xfe",
    b'{"id": 1, "type": "done"} trailing',
])
def test_decode_not_json(line: bytes) -> None:
    with pytest.raises(FrameError, match="not JSON"):
        decode(line, EVENT_TYPES)


@pytest.mark.parametrize("fid", [-1, True, False, "1", 1.0, 1.5, None, [1], {"a": 1}])
def test_decode_bad_id(fid: object) -> None:
    line = json.dumps({"id": fid, "type": "done"}).encode()
    with pytest.raises(FrameError, match="non-negative integer"):
        decode(line, EVENT_TYPES)


def test_decode_missing_id() -> None:
    with pytest.raises(FrameError, match="non-negative integer"):
        decode(b'{"type": "done"}', EVENT_TYPES)


def test_decode_nan_id() -> None:
    with pytest.raises(FrameError, match="non-negative integer"):
        decode(b'{"id": NaN, "type": "done"}', EVENT_TYPES)


@pytest.mark.parametrize("ftype", ["bogus", "", "DONE", None, 5, ["done"], "run", "exec"])
def test_decode_unknown_type(ftype: object) -> None:
    line = json.dumps({"id": 1, "type": ftype}).encode()
    with pytest.raises(FrameError, match="unknown frame type"):
        decode(line, EVENT_TYPES)


def test_request_type_is_not_an_event_and_vice_versa() -> None:
    with pytest.raises(FrameError):
        decode(b'{"id": 1, "type": "exec"}', EVENT_TYPES)
    with pytest.raises(FrameError):
        decode(b'{"id": 1, "type": "data"}', REQUEST_TYPES)


def test_unknown_type_message_is_bounded() -> None:
    line = json.dumps({"id": 1, "type": "x" * 10_000}).encode()
    with pytest.raises(FrameError) as info:
        decode(line, EVENT_TYPES)
    assert len(str(info.value)) < 100


def test_frame_error_is_value_error() -> None:
    assert issubclass(FrameError, ValueError)


def test_encode_lone_surrogate() -> None:
    frame = {"id": 1, "type": "stream", "name": "stdout", "text": "a\ud800b"}
    try:
        line = encode(frame)
    except FrameError:
        return
    assert decode(line, EVENT_TYPES)["text"].startswith("a")
