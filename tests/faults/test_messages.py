"""Messages that are not the frontend's: a wrong HMAC key, no signature, a replay, and
malformed messages are dropped (nothing runs), and the kernel keeps answering.

Every forged request carries code that would leave a file in /sandbox; a legitimate cell
afterwards lists /sandbox to prove none of them ran.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
import zmq
from jupyter_client.session import Session
from kernel.conftest import KernelHandle

pytestmark = pytest.mark.docker

DELIM = b"<IDS|MSG>"


@pytest.fixture(scope="module")
def mk() -> Iterator[KernelHandle]:
    h = KernelHandle("sandbox")
    try:
        h.ok("print('ready')")
        yield h
    finally:
        h.close()


def _dealer(mk: KernelHandle, channel: str) -> Iterator[zmq.Socket]:
    info = mk.km.get_connection_info()
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.linger = 0
    sock.connect(f"{info['transport']}://{info['ip']}:{info[f'{channel}_port']}")
    try:
        yield sock
    finally:
        sock.close()


@pytest.fixture
def shell(mk: KernelHandle) -> Iterator[zmq.Socket]:
    """A second client socket on the kernel's shell channel, ours to abuse."""
    yield from _dealer(mk, "shell")


@pytest.fixture
def control(mk: KernelHandle) -> Iterator[zmq.Socket]:
    yield from _dealer(mk, "control")


def _session(mk: KernelHandle, key: bytes | None = None) -> Session:
    info = mk.km.get_connection_info()
    return Session(key=info["key"] if key is None else key,
                   signature_scheme=info["signature_scheme"], username="intruder")


def _code(name: str) -> str:
    return f"open('/sandbox/{name}', 'a').write('ran\\n')"


def _content(code: object) -> dict[str, object]:
    return {"code": code, "silent": False, "store_history": True, "user_expressions": {},
            "allow_stdin": False, "stop_on_error": False}


def _replies(sock: zmq.Socket, session: Session, wait: float,
             expect: int | None = None) -> list[dict[str, object]]:
    """Replies arriving within ``wait`` seconds (or as soon as ``expect`` have)."""
    out: list[dict[str, object]] = []
    deadline = time.monotonic() + wait
    while len(out) != expect and sock.poll(max(0, int((deadline - time.monotonic()) * 1000))):
        _, msg = session.feed_identities(sock.recv_multipart())
        out.append(session.deserialize(msg))
    return out


def _sandbox_files(mk: KernelHandle) -> list[str]:
    return json.loads(mk.ok("import json, os\nprint(json.dumps(sorted(os.listdir('/sandbox'))))")
                      .text("stdout"))


def test_wrongly_signed_unsigned_and_malformed_requests_are_dropped(
        mk: KernelHandle, shell: zmq.Socket) -> None:
    good = _session(mk)
    _session(mk, b"not-the-kernel's-key").send(shell, "execute_request",
                                               _content(_code("wrong-key")))
    _session(mk, b"").send(shell, "execute_request", _content(_code("unsigned")))

    def signed(*parts: bytes) -> list[bytes]:
        return [DELIM, good.sign(list(parts)), *parts]

    header = good.msg_header("execute_request")
    no_type = dict(header)
    del no_type["msg_type"]
    body = good.pack(_content(_code("malformed")))
    shell.send_multipart(signed(good.pack(header)))  # fewer than 5 frames
    shell.send_multipart(signed(b"{not json", b"{}", b"{}", body))
    shell.send_multipart(signed(good.pack(no_type), b"{}", b"{}", body))
    shell.send_multipart([DELIM, b"0" * 64, good.pack(header), b"{}", b"{}", body])
    shell.send_multipart([b"no delimiter at all", good.pack(header), body])
    replies = _replies(shell, good, 3)
    assert replies == []  # dropped: not even an error reply
    assert _sandbox_files(mk) == []
    assert mk.alive()


def test_a_replayed_request_runs_once(mk: KernelHandle, shell: zmq.Socket) -> None:
    good = _session(mk)
    frames = good.serialize(good.msg("execute_request", _content(_code("replayed"))))
    shell.send_multipart(frames)
    first = _replies(shell, good, 30, expect=1)
    shell.send_multipart(frames)  # the same bytes, signature included
    again = _replies(shell, good, 3)
    assert [(r["msg_type"], r["content"]["status"]) for r in first] == [("execute_reply", "ok")]
    assert again == []
    assert mk.value("open('/sandbox/replayed').read()") == "'ran\\n'"
    mk.ok("import os\nos.remove('/sandbox/replayed')")


def test_code_that_is_not_a_string_is_refused_with_an_error_reply(
        mk: KernelHandle, shell: zmq.Socket) -> None:
    good = _session(mk)
    for code in (12345, None, ["print(1)"], {"code": "print(1)"}):
        good.send(shell, "execute_request", _content(code))
        replies = _replies(shell, good, 30, expect=1)
        assert [r["msg_type"] for r in replies] == ["execute_reply"], code
        content = replies[0]["content"]
        assert (content["status"], content["ename"]) == ("error", "InternalError"), content
        assert str(content["evalue"]).endswith("the kernel is still running"), content
    assert _sandbox_files(mk) == []
    assert mk.value("6 * 7") == "42"


def test_a_cell_sent_on_control_is_answered_with_an_error_and_never_runs(
        mk: KernelHandle, control: zmq.Socket) -> None:
    """Its output would be published under the parent of the shell's request."""
    good = _session(mk)
    good.send(control, "execute_request", _content(_code("on-control")))
    (reply,) = _replies(control, good, 30, expect=1)
    assert (reply["msg_type"], reply["content"]["status"]) == ("execute_reply", "error")
    assert reply["content"]["evalue"] == "cells run on the shell channel, not on control"
    good.send(control, "kernel_info_request", {})
    assert [r["msg_type"] for r in _replies(control, good, 30, expect=1)] == [
        "kernel_info_reply"]
    assert _sandbox_files(mk) == []
