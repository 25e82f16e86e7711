"""A small Engine API client: JSON over HTTP/1.1 on a unix socket, TCP or TLS, and the
hijacked streams of attach and exec start (Docker's API and Podman's compat API alike).

The backend makes a dozen kinds of call; docker-py cost the kernel process about 6 MB and
45 ms of imports for them (docs/architecture.md, "Engine client"). Every transport failure
leaves here as an EngineError (docker_errors.py); docker_connect.translated turns those
into SandboxErrors.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import select
import socket
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode, urlparse

from .docker_errors import EngineError, closed_on_error, connection_error, error_for
from .docker_stream import iter_frames

_IDLE_KEPT = 4  # idle keep-alive connections kept per client
_MAX_HEAD = 64 * 1024  # bytes of an upgrade response's status line and headers
_EXEC_SETTLE_S = 2.0  # an exec's state may say running for a moment after its output ends


@dataclass(frozen=True)
class TLSFiles:
    """TLS material as the docker CLI finds it: the engine's CA and a client certificate."""

    ca_cert: str | None = None
    client_cert: tuple[str, str] | None = None
    verify: bool = True

    def context(self) -> ssl.SSLContext:
        """A context that trusts the engine's CA only (never the system's or the
        environment's bundles)."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        if self.verify:
            if not self.ca_cert:
                raise EngineError("TLS verification is on but no CA certificate is given")
            ctx.load_verify_locations(cafile=self.ca_cert)
        else:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        if self.client_cert:
            ctx.load_cert_chain(*self.client_cert)
        return ctx


class _Connection(http.client.HTTPConnection):
    """http.client over whatever socket the client opens (unix, TCP or TLS)."""

    def __init__(self, host: str, opener: Callable[[], socket.socket], timeout: float) -> None:
        super().__init__(host, timeout=timeout)
        self._opener = opener

    def connect(self) -> None:
        self.sock = self._opener()


class EngineClient:
    """One engine endpoint; thread-safe (each request takes its own pooled connection)."""

    def __init__(self, url: str, tls: TLSFiles | None = None, timeout: float = 60.0,
                 version: str | None = None) -> None:
        self.base_url = url
        self.timeout = timeout
        parsed = urlparse(url)
        self._unix = parsed.scheme in ("unix", "http+unix")
        if not self._unix and parsed.scheme not in ("tcp", "http", "https"):
            raise EngineError(f"unsupported engine address {url!r} (unix:// or tcp:// only)")
        self._path = parsed.path if self._unix else ""
        self._host = "localhost" if self._unix else (parsed.hostname or "localhost")
        use_tls = tls is not None or parsed.scheme == "https"
        self._port = 0 if self._unix else parsed.port or (2376 if use_tls else 2375)
        # https:// without TLS files of the engine's: the system's CAs, never no checking
        self._ssl = (tls.context() if tls else ssl.create_default_context()) if use_tls \
            else None
        self._idle: list[_Connection] = []
        self._lock = threading.Lock()
        self._prefix = f"/v{version}" if version else ""
        self._version: dict[str, Any] | None = None  # the negotiation's answer, kept
        if version is None:
            self._version = dict(self.request("GET", "/version", versioned=False))
            self._prefix = f"/v{self._version.get('ApiVersion', '1.41')}"

    def _open(self) -> socket.socket:
        try:
            if self._unix:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                try:
                    sock.settimeout(self.timeout)
                    sock.connect(self._path)
                except BaseException:
                    sock.close()
                    raise
                return sock
            raw = socket.create_connection((self._host, self._port), self.timeout)
            if self._ssl is None:
                return raw
            try:
                return self._ssl.wrap_socket(raw, server_hostname=self._host)
            except BaseException:
                raw.close()
                raise
        except OSError as exc:
            raise connection_error(exc) from exc

    def _take(self) -> _Connection:
        with self._lock:
            while self._idle:
                conn = self._idle.pop()
                if conn.sock is not None and not _dropped(conn.sock):
                    return conn
                conn.close()
        return _Connection(self._host, self._open, self.timeout)

    def _give(self, conn: _Connection) -> None:
        with self._lock:
            if len(self._idle) < _IDLE_KEPT:
                self._idle.append(conn)
                return
        conn.close()

    def url(self, path: str, params: Mapping[str, Any] | None = None,
            versioned: bool = True) -> str:
        query = f"?{urlencode(_params(params))}" if params else ""
        return f"{self._prefix if versioned else ''}{path}{query}"

    def request(self, method: str, path: str, params: Mapping[str, Any] | None = None,
                body: Any = None, versioned: bool = True) -> Any:
        """One call: the decoded JSON answer (or text, or None); APIError on an error
        status, EngineConnectionError if the engine cannot be reached."""
        payload = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"} if payload is not None else {}
        conn = self._take()
        with closed_on_error(conn.close):
            conn.request(method, self.url(path, params, versioned), payload, headers)
            resp = conn.getresponse()
            data = resp.read()
        if resp.will_close:
            conn.close()
        else:
            self._give(conn)
        if resp.status >= 400:
            raise error_for(resp.status, data, path)
        if "json" in (resp.getheader("Content-Type") or "") and data:
            return json.loads(data)
        return data.decode("utf-8", "replace") if data else None

    def hijack(self, path: str, params: Mapping[str, Any] | None = None,
               body: Any = None) -> socket.socket:
        """POST with an upgrade to a raw stream (attach, exec start): the bare socket,
        positioned just after the response's headers."""
        payload = b"" if body is None else json.dumps(body).encode()
        head = (f"POST {self.url(path, params)} HTTP/1.1\r\nHost: {self._host}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n"
                "Connection: Upgrade\r\nUpgrade: tcp\r\n\r\n").encode()
        sock = self._open()
        with closed_on_error(sock.close):
            sock.sendall(head + payload)
            status, length = _read_head(sock)
            if status not in (101, 200):
                raise error_for(status, _read_body(sock, length), path)
        return sock

    def close(self) -> None:
        """Close the idle connections (a client in use may still open new ones)."""
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()

    # The calls the backend makes, named as in the Engine API reference.

    def ping(self) -> None:
        self.request("GET", "/_ping")

    def version(self) -> dict[str, Any]:
        """The engine's versions (asked once, when the API version was negotiated)."""
        if self._version is None:
            self._version = dict(self.request("GET", "/version"))
        return dict(self._version)

    def info(self) -> dict[str, Any]:
        return dict(self.request("GET", "/info"))

    def inspect_image(self, image: str) -> dict[str, Any]:
        return dict(self.request("GET", f"/images/{quote(image, safe='')}/json"))

    def inspect_container(self, cid: str) -> dict[str, Any]:
        return dict(self.request("GET", f"/containers/{cid}/json"))

    def create_container(self, config: dict[str, Any], name: str | None) -> str:
        params = {"name": name} if name else None
        return str(self.request("POST", "/containers/create", params, config)["Id"])

    def start(self, cid: str) -> None:
        self.request("POST", f"/containers/{cid}/start")

    def rename(self, cid: str, name: str) -> None:
        self.request("POST", f"/containers/{cid}/rename", {"name": name})

    def remove_container(self, cid: str, force: bool = True) -> None:
        self.request("DELETE", f"/containers/{cid}", {"force": force})

    def containers(self, all_states: bool, label: str) -> list[dict[str, Any]]:
        params = {"all": all_states, "filters": json.dumps({"label": [label]})}
        return list(self.request("GET", "/containers/json", params) or [])

    def attach(self, cid: str) -> socket.socket:
        return self.hijack(f"/containers/{cid}/attach",
                           {"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1})

    def exec_run(self, cid: str, argv: list[str], user: str) -> tuple[int, bytes]:
        """Run a command to its end; its exit code and its stdout and stderr, interleaved."""
        created = self.request("POST", f"/containers/{cid}/exec", body={
            "AttachStdin": False, "AttachStdout": True, "AttachStderr": True,
            "Tty": False, "Cmd": argv, "User": user, "Privileged": False})
        exec_id = str(created["Id"])
        sock = self.hijack(f"/exec/{exec_id}/start", body={"Detach": False, "Tty": False})
        with contextlib.closing(sock):
            output = b"".join(payload for _, payload in iter_frames(sock))
        code = self._exit_code(exec_id)
        if code is None:  # its output ended early (a read waits self.timeout for more)
            raise EngineError(f"{argv[0]} in the container still ran when its output stopped "
                              f"(a read waits {self.timeout:g} s for more)")
        return code, output

    def _exit_code(self, exec_id: str) -> int | None:
        """The exec's exit code (-1 if the engine has none); None while it still runs."""
        deadline = time.monotonic() + _EXEC_SETTLE_S
        while True:
            info = self.request("GET", f"/exec/{exec_id}/json")
            if not info.get("Running"):
                code = info.get("ExitCode")
                return code if isinstance(code, int) else -1
            if time.monotonic() > deadline:
                return None
            time.sleep(0.02)


def _params(params: Mapping[str, Any]) -> dict[str, str]:
    return {k: ("1" if v else "0") if isinstance(v, bool) else str(v)
            for k, v in params.items() if v is not None}


def _dropped(sock: socket.socket) -> bool:
    """An idle keep-alive socket that is readable was closed (or sent garbage)."""
    try:
        return bool(select.select([sock], [], [], 0)[0])
    except (OSError, ValueError):
        return True


def _read_head(sock: socket.socket) -> tuple[int, int | None]:
    """Status and Content-Length of a response, read byte by byte so that nothing of the
    stream after the headers is taken."""
    head = bytearray()
    while not head.endswith(b"\r\n\r\n"):
        byte = sock.recv(1)
        if not byte or len(head) > _MAX_HEAD:
            raise http.client.HTTPException("the engine closed the connection mid-response")
        head += byte
    lines = head.decode("latin-1").split("\r\n")
    try:
        status = int(lines[0].split()[1])
    except (IndexError, ValueError):
        raise http.client.HTTPException(f"not an HTTP response: {lines[0][:80]!r}") from None
    length = None
    for line in lines[1:]:
        key, _, value = line.partition(":")
        if key.strip().lower() == "content-length" and value.strip().isdigit():
            length = int(value)
    return status, length


def _read_body(sock: socket.socket, length: int | None) -> bytes:
    data = bytearray()
    limit = min(length if length is not None else _MAX_HEAD, _MAX_HEAD)
    while len(data) < limit:
        chunk = sock.recv(limit - len(data))
        if not chunk:
            break
        data += chunk
    return bytes(data)
