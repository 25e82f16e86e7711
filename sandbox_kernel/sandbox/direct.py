"""The direct link: the agent's frames over a unix socket instead of the engine's attach relay.

The host makes a directory per sandbox and the engine bind-mounts it, read-only, into the
container. When a session connects, the host listens on a socket with a random name there
and sends its path and a random token down the attached stdin (the `link` request); the
agent connects, sends the token, answers on stdout and from then on speaks only on the
socket. The attach stays open for the agent's stderr and for the container's lifetime
(stdin EOF still ends the agent). Where any step fails (gVisor without host sockets, a
remote engine, an old image), the session keeps the attach relay. docs/architecture.md,
"The direct link", says why cell code cannot reach or forge the socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import os
import secrets
import shutil
import socket
import stat
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from ..agent.frames import FrameError, FrameReader, check_fields, encode
from ..agent.protocol import AGENT_EVENTS, REPLIES
from ..errors import EngineUnavailable, ImageMissing, SandboxError, SandboxTimeout, SessionGone
from .backend import AgentStream
from .direct_stream import DirectStream

log = logging.getLogger(__name__)

#: Where the directory appears inside the container (the image has it, empty).
AGENT_DIR = "/opt/sandbox-link"
#: The handshake's request id: the channel's own ids start at 1 after it.
LINK_ID = 2**31
_ACCEPT_S = 5.0
_TOKEN = 32  # bytes, sent as hex with a newline
_SWEEP_AGE_S = 120.0


def local_engine(url: str) -> bool:
    """Whether an engine URL is on this machine (a bind mount of a host path then works)."""
    parsed = urlparse(url)
    if parsed.scheme in ("unix", "http+unix", "npipe"):
        return parsed.scheme != "npipe"
    if parsed.scheme == "http+docker":  # docker-py's name for its unix socket
        return True
    return parsed.hostname in ("127.0.0.1", "localhost", "::1")


@dataclass(frozen=True)
class LinkDirs:
    """The host directories that engines mount as AGENT_DIR, one per session id."""

    root: Path

    @classmethod
    def for_engine(cls, url: str) -> LinkDirs:
        """Per user and engine: a sweep on one engine never touches another's."""
        base = os.environ.get("XDG_RUNTIME_DIR") or f"/tmp/sandbox-kernel-{os.getuid()}"
        tag = hashlib.sha256(url.encode()).hexdigest()[:12]
        return cls(Path(base) / "sandbox-kernel-links" / tag)

    def make(self, session_id: str) -> Path:
        """The session's directory, new: traversable by the agent, listable by nobody."""
        _private_dirs(self.root)
        path = self.root / session_id
        path.mkdir(mode=0o711)
        path.chmod(0o711)  # the umask may have narrowed it
        return path

    def mount(self, session_id: str) -> dict[str, object]:
        """The Engine API mount of a new directory for `session_id`, read-only."""
        return {"Type": "bind", "Source": str(self.make(session_id)), "Target": AGENT_DIR,
                "ReadOnly": True}

    def path(self, session_id: str) -> Path | None:
        path = self.root / session_id
        return path if path.is_dir() else None

    def remove(self, session_id: str) -> None:
        shutil.rmtree(self.root / session_id, ignore_errors=True)

    def sweep(self, live: set[str]) -> None:
        """Remove directories of sessions that no longer exist (a crashed claimer's)."""
        now = time.time()
        with contextlib.suppress(OSError):
            for entry in self.root.iterdir():
                with contextlib.suppress(OSError):
                    if entry.name not in live and now - entry.stat().st_mtime > _SWEEP_AGE_S:
                        shutil.rmtree(entry, ignore_errors=True)


class EngineLinks:
    """The link directories of one engine's sandboxes, as its backend needs them."""

    def __init__(self, url: str, enabled: bool = True) -> None:
        self.dirs = LinkDirs.for_engine(url) if enabled and local_engine(url) else None
        self._made: dict[str, str] = {}  # container id -> session id, made here
        self._lock = threading.Lock()

    def mount(self, session_id: str) -> dict[str, object] | None:
        """The mount a new container of `session_id` gets, if any (for the engine's create)."""
        if self.dirs is None or not session_id:
            return None
        try:
            return self.dirs.mount(session_id)
        except OSError as exc:
            log.info("no direct link for session %s (%s)", session_id, exc)
            return None

    def create_with(self, session_id: str,
                    create: Callable[[list[dict[str, object]]], str]) -> str:
        """`create(mounts)` a container, with its link directory mounted if it can be; an
        engine that refuses the mount (a remote one behind a local address, a policy) gets
        the container without it, and no more link directories from this backend."""
        mount = self.mount(session_id)
        if mount is None:
            return create([])
        try:
            cid = create([mount])
        except (ImageMissing, EngineUnavailable):
            self.done("", session_id)
            raise
        except SandboxError as exc:
            self.done("", session_id)
            log.warning("the engine refused the direct link's directory (%s); frames go "
                        "through the engine", exc)
            self.dirs = None
            return create([])
        with self._lock:
            self._made[cid] = session_id
        return cid

    def place(self, session_id: str) -> tuple[Path, str] | None:
        path = self.dirs.path(session_id) if self.dirs is not None else None
        return (path, AGENT_DIR) if path is not None else None

    def done(self, container_id: str, session_id: str = "") -> None:
        """The directory may go: the link is up or refused, or the container is removed."""
        with self._lock:
            session_id = self._made.pop(container_id, session_id)
        if self.dirs is not None and session_id:
            self.dirs.remove(session_id)

    def sweep(self, live_sessions: set[str]) -> None:
        if self.dirs is not None:
            self.dirs.sweep(live_sessions)


def _private_dirs(root: Path) -> None:
    """Make `root` and its parents up to the base; refuse a base someone else owns."""
    base = root.parent.parent
    base.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = base.lstat()
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o022:
        raise OSError(f"{base} is not private to this user")
    root.mkdir(mode=0o700, parents=True, exist_ok=True)


class Listener:
    """One socket, one token: accepts the agent's connection and nobody else's."""

    def __init__(self, host_dir: Path, agent_dir: str) -> None:
        name = secrets.token_hex(12) + ".sock"
        self.host_path = host_dir / name
        self.agent_path = f"{agent_dir}/{name}"
        self.token = secrets.token_hex(_TOKEN)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self.sock.bind(str(self.host_path))
            os.chmod(self.host_path, 0o666)  # the agent runs as its own uid
            self.sock.listen(4)
            self.sock.setblocking(False)
        except OSError:
            self.close()
            raise

    async def accept(self, timeout: float = _ACCEPT_S) -> socket.socket:
        """The connection that presents the token; others are dropped. SessionGone if none."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            try:
                conn, _ = await asyncio.wait_for(loop.sock_accept(self.sock),
                                                 deadline - loop.time())
            except (asyncio.TimeoutError, OSError):
                break
            if await _presents(conn, self.token, deadline - loop.time()):
                return conn
            conn.close()
            log.warning("a connection to the direct link without its token was dropped")
        raise SessionGone("the sandbox agent did not connect its direct link")

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()
        with contextlib.suppress(OSError):
            self.host_path.unlink()


async def _presents(conn: socket.socket, token: str, timeout: float) -> bool:
    loop = asyncio.get_running_loop()
    conn.setblocking(False)
    want = token.encode() + b"\n"
    got = b""
    try:
        while len(got) < len(want):
            part = await asyncio.wait_for(loop.sock_recv(conn, len(want) - len(got)),
                                          max(0.01, timeout))
            if not part:
                return False
            got += part
    except (asyncio.TimeoutError, OSError):
        return False
    return hmac.compare_digest(got, want)


async def upgrade(stream: AgentStream, place: tuple[Path, str] | None,
                  timeout: float) -> AgentStream:
    """Move the agent's frames onto a direct link in `place` (the host directory and its
    path inside) if it takes one; else `stream` as is. Called before the channel starts,
    so nothing else reads or writes `stream` meanwhile."""
    if place is None:
        return stream
    try:
        listener = Listener(*place)
    except OSError as exc:
        log.info("no direct link (%s); frames go through the engine", exc)
        return stream
    try:
        await stream.write(encode({"id": LINK_ID, "type": "link", "path": listener.agent_path,
                                   "token": listener.token}))
        reply = await _reply(stream, timeout)
        if reply.get("status") != "ok":
            log.info("the agent took no direct link (%s); frames go through the engine",
                     reply.get("message", "no reason given"))
            return stream
        # The agent speaks only on the socket from here: there is no way back.
        return DirectStream(stream, await listener.accept())
    finally:
        listener.close()


async def _reply(stream: AgentStream, timeout: float) -> dict[str, object]:
    """The link reply, read straight off the stream (stderr lines are logged)."""
    reader = FrameReader(AGENT_EVENTS)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        try:
            kind, chunk = await asyncio.wait_for(stream.read(), max(0.0, deadline - loop.time()))
        except asyncio.TimeoutError:
            raise SandboxTimeout(f"the sandbox did not answer within {timeout:g} s") from None
        if kind == 0:
            raise SessionGone("the sandbox container stopped")
        if kind == 2:
            log.debug("agent: %s", chunk[:1000].decode("utf-8", "replace").rstrip())
            continue
        try:
            for frame in reader.feed(chunk):
                if frame.get("id") != LINK_ID or frame.get("type") != "reply":
                    raise SessionGone(f"the sandbox sent {frame.get('type')!r} before its "
                                      "link reply")
                if frame["status"] == "ok":
                    check_fields("link reply", REPLIES["link"], frame.get("body") or {},
                                 envelope=())
                return frame
        except FrameError as exc:
            raise SessionGone(f"the sandbox broke protocol ({exc}) and was disconnected") \
                from None
