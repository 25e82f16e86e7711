"""The contract and its frames: every message checked, hostile input refused, bounds exact."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from sandbox_kernel.agent import protocol
from sandbox_kernel.agent.frames import (
    FrameError,
    FrameReader,
    check_fields,
    decode,
    encode,
    encode_chunk,
    encode_stream,
    parse,
)
from sandbox_kernel.agent.protocol import (
    AGENT_EVENTS,
    CHUNK_BYTES,
    HOST_REQUESTS,
    MAX_DEPTH,
    MAX_FRAME_BYTES,
    OUT_BYTES,
    REPLIES,
    VERDICTS,
    WORKER_EVENTS,
    WORKER_REQUESTS,
    Field,
)
from sandbox_kernel.sandbox import spec

SAMPLES: dict[str, Any] = {"int": 3, "num": 1.5, "bool": True, "str": "x", "strs": ["a"],
                           "strmap": {"a": "b"}, "envmap": {"a": None}, "obj": {"k": [1]},
                           "objs": [{"k": 1}]}


def sample(fields: dict[str, Field]) -> dict[str, Any]:
    """A valid value for every field of a message."""
    out: dict[str, Any] = {}
    for name, f in fields.items():
        if f.kind == "enum":
            out[name] = f.choices[0]
        elif f.kind in ("int", "num"):
            out[name] = max(f.lo, min(f.hi, 3)) if f.kind == "num" else int(max(f.lo, min(f.hi,
                                                                                         3)))
        else:
            out[name] = SAMPLES[f.kind]
    return out


ALL = [(name, schema, t) for name, schema in (("host", HOST_REQUESTS), ("agent", AGENT_EVENTS),
                                               ("worker", WORKER_REQUESTS),
                                               ("worker-events", WORKER_EVENTS))
       for t in schema]


@pytest.mark.parametrize("side, schema, ftype", ALL, ids=[f"{s}-{t}" for s, _, t in ALL])
def test_every_message_round_trips(side: str, schema: dict, ftype: str) -> None:
    frame = {"id": 7, "type": ftype, **sample(schema[ftype])}
    if ftype == "chunk":
        frame["size"] = 3
        got = FrameReader(schema).feed(encode(frame) + b"abc")
        assert got == [{**frame, "payload": b"abc"}]
    else:
        assert decode(encode(frame), schema) == frame


@pytest.mark.parametrize("side, schema, ftype", ALL, ids=[f"{s}-{t}" for s, _, t in ALL])
def test_every_field_is_checked(side: str, schema: dict, ftype: str) -> None:
    fields = schema[ftype]
    good = {"id": 1, "type": ftype, **sample(fields)}
    with pytest.raises(FrameError, match="unknown field"):
        decode(encode({**good, "extra": 1}), schema)
    for name, f in fields.items():
        wrong: Any = {} if f.kind not in ("obj", "strmap", "envmap") else "text"
        with pytest.raises(FrameError, match=repr(name)):
            decode(encode({**good, name: wrong}), schema)
        if not f.optional:
            missing = {k: v for k, v in good.items() if k != name}
            with pytest.raises(FrameError, match="lacks"):
                decode(encode(missing), schema)


@pytest.mark.parametrize("rtype", sorted(REPLIES))
def test_reply_bodies(rtype: str) -> None:
    body = sample(REPLIES[rtype])
    check_fields(rtype, REPLIES[rtype], body, envelope=())
    with pytest.raises(FrameError):
        check_fields(rtype, REPLIES[rtype], {**body, "forged": True}, envelope=())


def test_the_verdicts_are_one_set() -> None:
    assert set(VERDICTS) == set(spec.Verdict.__args__)  # type: ignore[attr-defined]
    assert AGENT_EVENTS["done"]["verdict"].choices == VERDICTS


def test_contract_json_is_generated_from_protocol() -> None:
    path = Path(protocol.__file__).with_name("contract.json")
    assert json.loads(path.read_text()) == json.loads(json.dumps(protocol.contract())), \
        "regenerate: python -m sandbox_kernel.agent.protocol > sandbox_kernel/agent/contract.json"


def test_error_shape() -> None:
    body = protocol.error_body("EINVAL", "x" * 5000)
    assert set(body) == {"code", "message"} and len(body["message"]) == 2000


# ----- hostile frames ---------------------------------------------------------------------
def _padded(total: int) -> dict:
    base = len(encode({"id": 1, "type": "stream", "name": "stdout", "text": ""}))
    return {"id": 1, "type": "stream", "name": "stdout", "text": "x" * (total - base)}


def test_size_bound_is_exact() -> None:
    assert len(encode(_padded(MAX_FRAME_BYTES))) == MAX_FRAME_BYTES
    with pytest.raises(FrameError, match="exceeds"):
        encode(_padded(MAX_FRAME_BYTES + 1))
    with pytest.raises(FrameError, match="exceed"):
        FrameReader(AGENT_EVENTS).feed(b"x" * (MAX_FRAME_BYTES + 1))


def test_a_partial_line_is_bounded_and_scanned_once() -> None:
    reader = FrameReader(AGENT_EVENTS)
    line = encode(_padded(MAX_FRAME_BYTES))
    for i in range(0, len(line) - 1, 65536):
        assert reader.feed(line[i : min(i + 65536, len(line) - 1)]) == []
    assert len(reader.feed(line[-1:])) == 1


@pytest.mark.parametrize("line, why", [
    (b'{"id":1,"type":"stream","type":"done"}', "duplicate key"),
    (b'{"id":1,"type":"clear","wait":false,"wait":true}', "duplicate key"),
    (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
    (b'{"id":1,"type":"done","x":NaN}', "NaN is not valid"),
    (b'{"id":1,"type":"done","x":Infinity}', "Infinity is not valid"),
    (b"[1, 2]", "not a JSON object"),
    (b"\xff\xfe", "not JSON"),
    (b'{"id":1,"type":"done"} trailing', "not JSON"),
    (b'{"id":-1,"type":"done"}', "non-negative integer"),
    (b'{"id":true,"type":"done"}', "non-negative integer"),
    (b'{"id":1.0,"type":"done"}', "non-negative integer"),
    (b'{"id":1,"type":5}', "must be a string"),
    (b'{"id":1,"type":"evil"}', "unexpected frame type"),
    (b'{"id":1,"type":"run"}', "unexpected frame type"),  # a request is not an event
])
def test_hostile_lines_are_frame_errors(line: bytes, why: str) -> None:
    with pytest.raises(FrameError, match=why):
        decode(line, AGENT_EVENTS)


def test_nesting_inside_a_bundle_is_bounded() -> None:
    deep: Any = 1
    for _ in range(MAX_DEPTH + 1):
        deep = {"a": deep}
    frame = {"id": 1, "type": "display", "data": deep, "metadata": {}, "transient": {},
             "update": False}
    with pytest.raises(FrameError, match="not a valid obj"):
        decode(encode(frame), AGENT_EVENTS)


def test_bounds_of_numbers_and_texts() -> None:
    ok = {"id": 1, "type": "exited", "exit_code": 0, "stdout": "", "stderr": "",
          "duration_ms": 1.0, "timed_out": False, "interrupted": False, "oom_killed": False,
          "dropped_bytes": 0}
    decode(encode(ok), AGENT_EVENTS)
    for field, value in (("exit_code", 256), ("exit_code", -2), ("dropped_bytes", -1),
                         ("duration_ms", -1.0), ("timed_out", 1)):
        with pytest.raises(FrameError):
            decode(encode({**ok, field: value}), AGENT_EVENTS)


def test_chunks_carry_raw_bytes_and_are_bounded() -> None:
    data = bytes(range(256)) * 10
    reader = FrameReader(HOST_REQUESTS)
    wire = encode_chunk(5, data) + data + encode({"id": 6, "type": "stats"})
    out: list[dict] = []
    for i in range(0, len(wire), 7):  # arbitrary splits, also inside the payload
        out += reader.feed(wire[i : i + 7])
    assert out == [{"id": 5, "type": "chunk", "size": len(data), "payload": data},
                   {"id": 6, "type": "stats"}]
    with pytest.raises(FrameError):
        encode_chunk(1, b"x" * (CHUNK_BYTES + 1))
    with pytest.raises(FrameError):
        FrameReader(HOST_REQUESTS).feed(b'{"id":1,"type":"chunk","size":%d}\n' %
                                        (CHUNK_BYTES + 1))


def test_a_reusing_reader_takes_chunk_bytes_in_place_and_in_pieces() -> None:
    first, second = bytes(range(256)) * 40, b"\xff" * 3000
    reader = FrameReader(HOST_REQUESTS, reuse=True)
    assert reader.room() is None
    reader.feed(encode({"id": 4, "type": "stats"}))
    assert reader.body is None  # an agent that moved no file holds no 1 MiB buffer
    wire = encode_chunk(5, first) + first[:100]  # a header and the start of its bytes
    assert reader.feed(wire) == []
    got: list[bytes] = []
    while (room := reader.room()) is not None:  # the rest read straight into the buffer
        n = min(len(room), 1000)
        room[:n] = first[len(first) - len(room):][:n]
        got += [bytes(f["payload"]) for f in reader.filled(n)]
    assert got == [first]
    frames = reader.feed(encode_chunk(6, second) + second + encode_chunk(7, b"ab") + b"ab" +
                         encode({"id": 8, "type": "stats"}))  # several chunks in one call
    assert [(f["id"], bytes(f.get("payload", b""))) for f in frames] == [
        (6, second), (7, b"ab"), (8, b"")]
    with pytest.raises(FrameError):  # the buffer holds one chunk: bigger ones are refused
        reader.feed(b'{"id":1,"type":"chunk","size":%d}\n' % (CHUNK_BYTES + 1))


def test_stream_text_travels_as_raw_utf8_and_reads_back_as_a_stream_frame() -> None:
    text = "x" * 1000 + "\u00fc\u20ac\U0001f600\n"
    wire = encode_stream({"id": 3, "type": "stream", "name": "stderr", "text": text})
    assert wire.startswith(b'{"id":3,"type":"out","name":"stderr","size":1010}\n')
    assert text.encode() in wire
    for schema in (WORKER_EVENTS, AGENT_EVENTS):
        reader, out = FrameReader(schema), []
        for i in range(0, len(wire), 5):  # splits inside multi-byte characters too
            out += reader.feed(wire[i : i + 5])
        assert out == [{"id": 3, "type": "stream", "name": "stderr", "text": text}]
    lone = encode_stream({"id": 1, "type": "stream", "name": "stdout", "text": "a\ud800b"})
    assert FrameReader(WORKER_EVENTS).feed(lone)[0]["text"] == "a\ufffd\ufffd\ufffdb"
    with pytest.raises(FrameError, match="size"):  # a worker's out frame is bounded
        FrameReader(WORKER_EVENTS).feed(b'{"id":1,"type":"out","name":"stdout","size":%d}\n'
                                        % (OUT_BYTES + 1))
    with pytest.raises(FrameError, match="unexpected frame type"):  # never a request
        FrameReader(HOST_REQUESTS).feed(b'{"id":1,"type":"out","name":"stdout","size":1}\nx')


def test_text_is_utf8_and_lone_surrogates_survive_encoding() -> None:
    assert "\u00fc".encode() in encode({"id": 1, "type": "notice", "text": "\u00fc"})
    line = encode({"id": 1, "type": "notice", "text": "a\ud800b"})
    assert parse(line)["text"] == "a\ud800b"
