"""IOPub's sending thread: a welcome per subscriber, sends in order, nothing after stop."""

from __future__ import annotations

import zmq

from sandbox_kernel.kernel.channels import IOPubThread
from sandbox_kernel.kernel.wire import Wire


def _recv(sock: zmq.Socket[bytes]) -> list[bytes]:
    assert sock.poll(10_000), "nothing arrived on IOPub"
    return sock.recv_multipart()


def test_iopub_welcomes_sends_in_order_and_drops_what_comes_after_stop() -> None:
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    pub, sub = context.socket(zmq.XPUB), context.socket(zmq.SUB)
    wire = Wire(b"key")
    try:
        port = pub.bind_to_random_port("tcp://127.0.0.1")
        sub.subscribe(b"")
        sub.connect(f"tcp://127.0.0.1:{port}")
        thread = IOPubThread(pub, wire)
        _, welcome = wire.parse(_recv(sub))
        assert welcome["msg_type"] == "iopub_welcome"
        for i in range(3):
            thread.send_multipart([b"topic", str(i).encode()])
        assert [_recv(sub)[1] for _ in range(3)] == [b"0", b"1", b"2"]
        thread.stop()
        thread.send_multipart([b"topic", b"late"])  # a widget closed at exit: no error
        thread.stop()
        assert not sub.poll(200)
    finally:
        context.destroy(linger=0)
