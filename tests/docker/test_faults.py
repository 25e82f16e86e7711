"""Infrastructure faults become one clear SandboxError, and never leave a container behind."""

from __future__ import annotations

import gc
import time

import pytest

from sandbox_kernel.errors import (
    EngineUnavailable,
    ImageMissing,
    SandboxError,
    SessionGone,
    SessionNotFound,
)
from sandbox_kernel.sandbox import SandboxManager
from sandbox_kernel.sandbox.docker_api import EngineClient
from sandbox_kernel.sandbox.docker_backend import DockerBackend

pytestmark = pytest.mark.docker

NO_ENGINE = "unix:///nonexistent.sock"


def one_sentence(msg: str) -> None:
    assert msg and "\n" not in msg and "Traceback" not in msg
    assert len(msg) < 300
    assert msg.replace("e.g. ", "eg ").count(". ") == 0, f"more than one sentence: {msg!r}"


def failures(*calls, expected: type[SandboxError]) -> list[str]:
    """Messages of calls that must each raise `expected`; the exceptions are dropped, and
    collected, so that a socket left open would warn (an error) here."""
    messages = []
    for call in calls:
        try:
            call()
        except expected as exc:
            messages.append(str(exc))
        else:
            pytest.fail(f"{call} did not raise {expected.__name__}")
    gc.collect()
    return messages


def test_engine_unreachable_explicit_client() -> None:
    client = EngineClient(NO_ENGINE, version="1.41", timeout=5)
    backend = DockerBackend(client=client)
    try:
        messages = failures(
            lambda: backend.check("sandbox-kernel:agent-v1"), backend.list_owned,
            backend.versions, lambda: backend.state("0" * 64), lambda: backend.remove("0" * 64),
            expected=EngineUnavailable)
    finally:
        client.close()
    assert len(messages) == 5
    for msg in messages:
        one_sentence(msg)
        assert "start one" in msg and "systemctl start docker" in msg
        assert "DOCKER_HOST" in msg


def test_engine_unreachable_from_environment(monkeypatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", NO_ENGINE)
    [msg] = failures(lambda: SandboxManager(cleanup_interval=0).create_session(),
                     expected=EngineUnavailable)
    one_sentence(msg)
    # It names the address, where it came from and the cause, then what to do.
    assert msg.startswith(f"no Docker engine is reachable at {NO_ENGINE} (DOCKER_HOST): ")
    assert "; start one" in msg


def test_image_missing(manager) -> None:
    image = "sandbox-kernel:no-such-image-for-tests"
    errors: list[dict] = []
    with SandboxManager(image=image, cleanup_interval=0, reap_on_start=False) as m:
        m.on("error", errors.append)
        with pytest.raises(ImageMissing) as info:
            m.open_session()
        assert m.list_sessions() == []
    msg = str(info.value)
    one_sentence(msg)
    assert "sandbox-kernel build-image" in msg
    assert image in msg
    assert len(errors) == 1 and errors[0]["error"] is info.value
    with pytest.raises(ImageMissing, match="sandbox-kernel build-image"):
        manager.backend.check(image)


def test_container_killed_from_outside(manager, session) -> None:
    sid, cid = session.session_id, session.container_id
    manager.backend.api.request("POST", f"/containers/{cid}/kill")
    t0 = time.monotonic()
    with pytest.raises(SessionGone) as info:
        session.execute_command(["echo", "hi"])
    assert time.monotonic() - t0 < 5
    msg = str(info.value)
    one_sentence(msg)
    assert "state is lost" in msg
    assert "stopped" in msg or "removed from outside" in msg
    # every later call says the same kind of thing, quickly
    with pytest.raises(SessionGone):
        session.read_file("x")
    assert session.alive is False
    assert {i.session_id: i.alive for i in manager.list_sessions()}[sid] is False
    manager.destroy_session(sid)
    with pytest.raises(SessionNotFound):
        manager.session(sid)


def test_closing_removes_the_container(manager, session, wait_gone) -> None:
    cid = session.container_id
    assert manager.backend.state(cid).running
    manager.destroy_session(session.session_id)
    assert wait_gone(manager.backend, cid)
    with pytest.raises(SessionGone):
        session.execute_command(["true"])
    session.close()  # idempotent
    with pytest.raises(SessionNotFound):
        manager.destroy_session(session.session_id)


def test_owner_gone_container_removes_itself(manager, session) -> None:
    """The owner's attach stream closing (as when its process dies) ends the container."""
    cid = session.container_id
    assert session.execute_command(["true"]).exit_code == 0
    session.channel.close("simulated owner death")  # stream closed, container NOT removed
    deadline = time.monotonic() + 10
    while manager.backend.state(cid).exists and time.monotonic() < deadline:
        time.sleep(0.1)
    assert manager.backend.state(cid).exists is False, "agent did not exit on stdin EOF"
    with pytest.raises(SessionGone, match="removed from outside"):
        session.execute_command(["true"])


def test_unknown_session_ids(manager) -> None:
    for call in (lambda: manager.session("nope"), lambda: manager.execute_command("nope", "true"),
                 lambda: manager.get_session_health("nope"),
                 lambda: manager.destroy_session("nope")):
        with pytest.raises(SessionNotFound) as info:
            call()
        assert str(info.value) == "no sandbox session 'nope'"
        assert isinstance(info.value, KeyError)


def test_closed_manager_refuses_new_sessions() -> None:
    m = SandboxManager(cleanup_interval=0, reap_on_start=False)
    m.close()
    with pytest.raises(SandboxError, match="closed"):
        m.create_session()
