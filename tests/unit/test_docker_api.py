"""The Engine API client (docker_api.py) against a fake engine on a unix socket: version
negotiation, errors by status, keep-alive reuse, and hijacked streams that lose no byte."""

from __future__ import annotations

import json
import socketserver
import ssl
import struct
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest

from sandbox_kernel.sandbox.docker_api import EngineClient
from sandbox_kernel.sandbox.docker_errors import (
    APIError,
    EngineConnectionError,
    EngineError,
    EngineTimeout,
    ImageNotFound,
    NotFound,
)
from sandbox_kernel.sandbox.docker_stream import iter_frames

FRAME = struct.pack(">BxxxL", 1, 5) + b"hello" + struct.pack(">BxxxL", 2, 3) + b"err"


class FakeEngine(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    connections = 0
    seen: list[tuple[str, str, Any]] = []

    def setup(self) -> None:
        type(self).connections += 1
        super().setup()

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _json(self, status: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> Any:
        n = int(self.headers.get("Content-Length") or 0)
        return json.loads(self.rfile.read(n)) if n else None

    def do_GET(self) -> None:
        self.seen.append(("GET", self.path, None))
        if self.path == "/version":
            self._json(200, {"ApiVersion": "1.43"})
        elif self.path.startswith("/v1.43/images/"):
            self._json(404, {"message": "No such image: nothing:latest"})
        elif self.path.startswith("/v1.43/containers/json"):
            self._json(200, [{"Id": "c1"}])
        elif self.path.startswith("/v1.43/exec/"):  # e1 finishes (a moment after its
            # output ended, as an engine may report it), e2 still runs
            asked = sum(1 for _, path, _ in self.seen if path == self.path)
            done = "/e1/" in self.path and asked > 1
            self._json(200, {"Running": not done, "ExitCode": 3 if done else None})
        else:
            self._json(404, {"message": "No such container: c9"})

    def do_POST(self) -> None:
        body = self._body()
        self.seen.append(("POST", self.path, body))
        if self.path.endswith("/attach?stdin=1&stdout=1&stderr=1&stream=1") and \
                "/c1/" in self.path:
            # headers and the first frames in one write: none of it may be lost
            self.wfile.write(b"HTTP/1.1 101 UPGRADED\r\nContent-Type: "
                             b"application/vnd.docker.raw-stream\r\nConnection: Upgrade\r\n"
                             b"Upgrade: tcp\r\n\r\n" + FRAME)
            self.close_connection = True
        elif self.path.endswith("/exec"):
            self._json(201, {"Id": "e1" if "/c1/" in self.path else "e2"})
        elif self.path.startswith("/v1.43/exec/"):
            self.wfile.write(b"HTTP/1.1 101 UPGRADED\r\nUpgrade: tcp\r\n\r\n" + FRAME)
            self.wfile.flush()
            if "/e2/" in self.path:
                time.sleep(1.0)  # output stops but the command runs on
            self.close_connection = True
        elif "/attach" in self.path:
            self._json(409, {"message": "container c2 is not running"})
        elif self.path.startswith("/v1.43/containers/create"):
            self._json(201, {"Id": "new", "Warnings": []})
        else:
            self.send_response(204)
            self.end_headers()


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[str]:
    path = str(tmp_path / "engine.sock")
    server = socketserver.ThreadingUnixStreamServer(path, FakeEngine)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    FakeEngine.connections, FakeEngine.seen = 0, []
    yield f"unix://{path}"
    server.shutdown()
    server.server_close()
    thread.join(5)


def test_version_is_negotiated_and_connections_are_reused(engine: str) -> None:
    client = EngineClient(engine, timeout=5)
    assert client.containers(True, "sandbox_kernel.session") == [{"Id": "c1"}]
    client.start("c1")
    assert client.create_container({"Image": "i"}, "name one") == "new"
    assert [p for _, p, _ in FakeEngine.seen] == [
        "/version",
        "/v1.43/containers/json?all=1&filters=%7B%22label%22%3A+%5B%22sandbox_kernel.session"
        "%22%5D%7D",
        "/v1.43/containers/c1/start", "/v1.43/containers/create?name=name+one"]
    assert FakeEngine.seen[-1][2] == {"Image": "i"}
    assert FakeEngine.connections == 1  # one keep-alive connection for all four
    assert client.version()["ApiVersion"] == "1.43"  # the negotiation's answer, not a call
    assert len(FakeEngine.seen) == 4
    client.close()


def test_errors_by_status(engine: str) -> None:
    client = EngineClient(engine, timeout=5, version="1.43")
    with pytest.raises(ImageNotFound, match="No such image"):
        client.inspect_image("nothing:latest")
    with pytest.raises(NotFound) as err:
        client.inspect_container("c9")
    assert not isinstance(err.value, ImageNotFound) and err.value.status_code == 404
    with pytest.raises(APIError, match="is not running") as refused:
        client.attach("c2")
    assert refused.value.status_code == 409
    client.close()


def test_a_hijacked_stream_keeps_the_bytes_that_came_with_the_headers(engine: str) -> None:
    client = EngineClient(engine, timeout=5, version="1.43")
    sock = client.attach("c1")
    try:
        assert list(iter_frames(sock)) == [(1, b"hello"), (2, b"err")]
    finally:
        sock.close()
        client.close()


def test_exec_run_gives_the_exit_code_or_says_the_command_did_not_finish(engine: str) -> None:
    client = EngineClient(engine, timeout=0.3, version="1.43")
    assert client.exec_run("c1", ["probe"], user="1:1") == (3, b"helloerr")
    with pytest.raises(EngineError, match="probe in the container still ran") as err:
        client.exec_run("c2", ["probe"], user="1:1")
    assert not isinstance(err.value, EngineTimeout)  # the probe was slow, not the engine
    client.close()


def test_no_engine_is_a_connection_error(tmp_path: Path) -> None:
    with pytest.raises(EngineConnectionError) as err:
        EngineClient(f"unix://{tmp_path}/none.sock", timeout=5)
    assert isinstance(err.value.__cause__, FileNotFoundError)
    with pytest.raises(Exception, match="unix:// or tcp://"):
        EngineClient("ssh://host", timeout=5)


def test_https_without_the_engines_files_still_verifies() -> None:
    """An https:// address with no TLS files checks the certificate with the system's CAs,
    and never silently not at all."""
    ctx = EngineClient("https://127.0.0.1:9", version="1.41")._ssl
    assert ctx is not None and ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname
    assert EngineClient("tcp://127.0.0.1:9", version="1.41")._ssl is None
