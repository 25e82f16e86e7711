"""The kernel's wire protocol against jupyter_client's Session, and what it refuses."""

from __future__ import annotations

import json
import math
from datetime import datetime, timezone

import pytest
from jupyter_client.session import Session

from sandbox_kernel.kernel.wire import DELIM, Wire, WireError, pack

KEY = b"a-connection-key"


def test_jupyter_clients_messages_parse_and_ours_deserialize_in_jupyter_client() -> None:
    client, wire = Session(key=KEY, username="u"), Wire(KEY)
    request = client.msg("execute_request", {"code": "1 + 1 # é"})
    idents, msg = wire.parse(client.serialize(request, ident=[b"route"]))
    assert idents == [b"route"]
    assert (msg["msg_type"], msg["content"]["code"]) == ("execute_request", "1 + 1 # é")
    reply = wire.message("execute_reply", {"status": "ok"}, msg, {"k": 1})
    got = client.deserialize(client.feed_identities(wire.frames(reply, idents, [b"buf"]))[1])
    assert got["parent_header"]["msg_id"] == request["header"]["msg_id"]
    assert (got["content"], got["metadata"]) == ({"status": "ok"}, {"k": 1})
    assert [bytes(b) for b in got["buffers"]] == [b"buf"]
    assert got["header"]["version"] == "5.4"


def test_wrong_key_unsigned_and_replayed_messages_are_refused() -> None:
    wire = Wire(KEY)
    frames = Session(key=KEY).serialize(Session(key=KEY).msg("kernel_info_request"))
    for forged in (Session(key=b"other").serialize(Session().msg("kernel_info_request")),
                   Session(key=b"").serialize(Session().msg("kernel_info_request"))):
        with pytest.raises(WireError, match="invalid signature"):
            wire.parse(forged)
    wire.parse(frames)
    with pytest.raises(WireError, match="replayed"):
        wire.parse(frames)


@pytest.mark.parametrize("frames", [
    [b"no delimiter", b"{}"],
    [DELIM, b"sig", b"{}"],
], ids=["no delimiter", "too few frames"])
def test_malformed_framing_is_refused(frames: list[bytes]) -> None:
    with pytest.raises(WireError):
        Wire(b"").parse(frames)


@pytest.mark.parametrize("header", [b"{not json", b"\xff\xfe", b"[1, 2]", b"[" * 100_000],
                         ids=["not json", "not utf-8", "not an object", "nested too deep"])
def test_a_header_that_is_not_a_json_object_is_refused(header: bytes) -> None:
    wire = Wire(KEY)
    body = [header, b"{}", b"{}", b"{}"]
    with pytest.raises(WireError):
        wire.parse([DELIM, wire.sign(body), *body])


def test_without_a_key_nothing_is_signed_or_checked() -> None:
    wire = Wire(b"")
    frames = wire.frames(wire.message("status", {"execution_state": "idle"}))
    assert frames[1] == b""
    assert wire.parse(frames)[1]["content"] == {"execution_state": "idle"}


def test_an_unknown_signature_scheme_is_refused() -> None:
    for scheme in ("hmac-nope", "rsa-sha256"):
        with pytest.raises(WireError, match="unsupported signature scheme"):
            Wire(KEY, scheme)


def test_dates_go_out_as_utc_iso_and_non_finite_floats_as_null() -> None:
    stamp = datetime(2026, 12, 7, 12, 0, tzinfo=timezone.utc)
    out = json.loads(pack({"t": stamp, "naive": stamp.replace(tzinfo=None),
                           "x": [math.nan, math.inf, 1.5], "s": "é"}))
    assert out == {"t": "2026-12-07T12:00:00Z", "naive": "2026-12-07T12:00:00Z",
                   "x": [None, None, 1.5], "s": "é"}
