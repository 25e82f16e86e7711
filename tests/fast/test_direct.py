"""The direct link (sandbox/direct.py): frames on a unix socket, the attach as fallback.

The local backend offers the link by default, so the rest of the fast tier runs over it;
these tests check the handshake itself, what it leaves behind and what it refuses.
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import time
from pathlib import Path

import pytest

from sandbox_kernel.errors import ImageMissing, SandboxError, SessionGone
from sandbox_kernel.sandbox.direct import EngineLinks, LinkDirs, Listener, local_engine
from sandbox_kernel.sandbox.direct_stream import DirectStream
from sandbox_kernel.sandbox.local_backend import LocalBackend, LocalStream
from sandbox_kernel.sandbox.session import AsyncSession

from .conftest import in_loop


async def _cell(s: AsyncSession) -> tuple[str, str, list[str]]:
    run = await s.run("print(6 * 7)")
    out = "".join([e.get("text", "") async for e in run.events()])
    link_dir = Path(s.backend._box(s.container_id).root) / "link"  # type: ignore[attr-defined]
    return type(s.channel.stream).__name__, out, os.listdir(link_dir)


def test_a_session_moves_to_the_direct_link_and_leaves_no_socket_behind() -> None:
    kind, out, left = in_loop(_cell)
    assert kind == DirectStream.__name__ and out == "42\n"
    assert left == []  # the socket was unlinked once the agent connected


def test_without_the_direct_link_frames_stay_on_the_attach() -> None:
    kind, out, _ = in_loop(_cell, LocalBackend(direct=False))
    assert kind == LocalStream.__name__ and out == "42\n"


def test_files_cross_the_direct_link_intact(shared: object) -> None:
    data = os.urandom(5 << 20) + b"\n\x00end"
    shared.write_file("/sandbox/direct.bin", data)  # type: ignore[attr-defined]
    assert shared.read_file("/sandbox/direct.bin") == data  # type: ignore[attr-defined]


def test_the_agent_takes_one_link_only() -> None:
    async def second(s: AsyncSession) -> tuple[str, str]:
        reply = await s.channel.request("link", path="/nonexistent.sock", token="0" * 64)
        return reply["status"], reply["message"]

    status, message = in_loop(second)
    assert status == "error" and "already moved" in message


def test_a_listener_accepts_only_the_connection_with_its_token(tmp_path: Path) -> None:
    async def main() -> bytes:
        listener = Listener(tmp_path, str(tmp_path))
        try:
            intruder = socket.socket(socket.AF_UNIX)
            intruder.connect(listener.agent_path)
            intruder.sendall(b"f" * 64 + b"\n")
            agent = socket.socket(socket.AF_UNIX)
            agent.connect(listener.agent_path)
            agent.sendall(listener.token.encode() + b"\n")
            conn = await listener.accept(timeout=2)
            agent.sendall(b"frames")
            got = await asyncio.get_running_loop().sock_recv(conn, 100)
            for s in (conn, agent, intruder):
                s.close()
            return got
        finally:
            listener.close()

    assert asyncio.run(main()) == b"frames"
    assert os.listdir(tmp_path) == []


def test_a_listener_nobody_answers_gives_up_in_time(tmp_path: Path) -> None:
    async def main() -> None:
        listener = Listener(tmp_path, str(tmp_path))
        try:
            await listener.accept(timeout=0.3)
        finally:
            listener.close()

    t0 = time.monotonic()
    with pytest.raises(SessionGone, match="did not connect its direct link"):
        asyncio.run(main())
    assert time.monotonic() - t0 < 2


def test_link_directories_are_private_and_swept_when_their_session_is_gone(
        tmp_path: Path) -> None:
    dirs = LinkDirs(tmp_path / "base" / "links" / "engine")
    live, gone, young = (dirs.make(s) for s in ("live", "gone", "young"))
    assert oct(live.stat().st_mode & 0o777) == "0o711"  # traversable, not listable
    old = time.time() - 600
    for d in (live, gone):
        os.utime(d, (old, old))
    dirs.sweep({"live"})
    assert (live.is_dir(), gone.exists(), young.is_dir()) == (True, False, True)


def test_a_base_directory_others_can_write_is_refused(tmp_path: Path) -> None:
    base = tmp_path / "shared"
    base.mkdir(mode=0o777)
    base.chmod(0o777)
    with pytest.raises(OSError, match="not private"):
        LinkDirs(base / "links" / "engine").make("s")


@pytest.mark.parametrize("url, local", [
    ("unix:///var/run/docker.sock", True), ("http+docker://localhost", True),
    ("tcp://127.0.0.1:2376", True), ("https://localhost:2376", True),
    ("tcp://10.0.0.5:2376", False), ("ssh://user@host", False), ("npipe:////./pipe/x", False),
])
def test_only_an_engine_on_this_machine_gets_a_link_directory(url: str, local: bool) -> None:
    assert local_engine(url) is local


def test_an_engine_that_refuses_the_mount_gets_the_container_without_it(
        tmp_path: Path) -> None:
    links = EngineLinks("unix:///var/run/docker.sock")
    links.dirs = LinkDirs(tmp_path / "base" / "links" / "engine")
    calls: list[list[dict[str, object]]] = []

    def create(mounts: list[dict[str, object]]) -> str:
        calls.append(mounts)
        if mounts:
            raise SandboxError("invalid mount config: bind source path does not exist")
        return "cid"

    assert links.create_with("s1", create) == "cid"
    assert [bool(m) for m in calls] == [True, False]
    assert links.dirs is None and links.place("s2") is None  # no more tries on this engine
    assert os.listdir(tmp_path / "base" / "links" / "engine") == []


def test_a_missing_image_is_not_retried_and_leaves_no_directory(tmp_path: Path) -> None:
    links = EngineLinks("unix:///var/run/docker.sock")
    links.dirs = LinkDirs(tmp_path / "base" / "links" / "engine")

    def create(mounts: list[dict[str, object]]) -> str:
        raise ImageMissing("no image")

    with pytest.raises(ImageMissing):
        links.create_with("s1", create)
    assert links.dirs is not None and os.listdir(links.dirs.root) == []


def test_anything_but_the_link_reply_first_ends_the_start_with_a_reason() -> None:
    fake = Path(__file__).with_name("fake_agent.py")

    async def never(s: AsyncSession) -> None:
        raise AssertionError("the session should not have started")

    with pytest.raises(SessionGone, match="sent 'notice' before its link reply"):
        in_loop(never, LocalBackend(agent_argv=[sys.executable, str(fake), "linkjunk"]))
