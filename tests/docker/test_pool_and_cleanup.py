"""Warm pool (atomic claims), idle and dead session cleanup, and the orphan reaper."""

from __future__ import annotations

import os
import secrets
import threading
import time

import pytest

from sandbox_kernel.sandbox import Limits, SandboxManager
from sandbox_kernel.sandbox.backend import LABEL_POOL, LABEL_SESSION
from sandbox_kernel.sandbox.image import default_image
from sandbox_kernel.sandbox.reaper import POOL_PREFIX, Owner, host_id, owner_labels, reap
from sandbox_kernel.sandbox.spec import ContainerSpec

pytestmark = pytest.mark.docker


def pool_containers(m: SandboxManager) -> list[str]:
    """Running, unclaimed containers of this manager's pool."""
    return [r.id for r in m.backend.list_owned(all_states=False)
            if r.labels.get(LABEL_POOL) == m.pool.key and r.name.startswith(POOL_PREFIX)
            and r.labels.get("sandbox_kernel.owner_pid") == str(os.getpid())]


def wait_for(predicate, timeout: float = 30.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    pytest.fail(f"timed out after {timeout:g} s waiting for {what}")


def test_concurrent_fills_keep_exactly_the_pool_size() -> None:
    """The background refill and callers waiting for a full pool never overfill it."""
    # Limits of its own, so that no other kernel on this engine claims from this pool.
    with SandboxManager(pool_size=2, cleanup_interval=0,
                        limits=Limits(memory=333 * 2**20)) as m:
        threads = [threading.Thread(target=m.pool.fill_once) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        time.sleep(2.5)  # one more round of the background loop
        assert len(pool_containers(m)) == 2
    assert pool_containers(m) == []


@pytest.mark.slow
def test_pool_claims_and_close(wait_gone) -> None:
    created: list[dict] = []
    m = SandboxManager(pool_size=1, cleanup_interval=0)
    try:
        m.on("session:created", created.append)
        wait_for(lambda: pool_containers(m), what="the pool to fill")
        s = m.open_session()
        assert created[-1]["pooled"] is True and created[-1]["session_id"] == s.session_id
        assert LABEL_POOL in m.backend.api.inspect_container(s.container_id)["Config"]["Labels"]
        # claimed: renamed to this process's own name, and it works
        name = m.backend.api.inspect_container(s.container_id)["Name"].lstrip("/")
        assert name == m.owner.container_name(s.session_id)
        assert s.execute_command(["echo", "pooled"]).stdout == "pooled\n"

        # two concurrent claims never share a container
        wait_for(lambda: pool_containers(m), what="the pool to refill")
        barrier = threading.Barrier(2)
        got: list[object] = []

        def claim() -> None:
            barrier.wait()
            try:
                got.append(m.open_session())
            except Exception as exc:  # noqa: BLE001 - reported below
                got.append(exc)

        threads = [threading.Thread(target=claim) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert len(got) == 2 and not [g for g in got if isinstance(g, Exception)], got
        a, b = got
        assert a.container_id != b.container_id  # type: ignore[attr-defined]
        assert a.session_id != b.session_id  # type: ignore[attr-defined]
        assert a.execute_command(["true"]).exit_code == 0  # type: ignore[attr-defined]
        assert b.execute_command(["true"]).exit_code == 0  # type: ignore[attr-defined]
        assert sum(1 for c in created if c["pooled"]) >= 2

        # different limits never come from the pool
        odd = m.open_session(Limits(pids=30))
        assert created[-1]["pooled"] is False
        assert odd.container_id not in (s.container_id, a.container_id,  # type: ignore[attr-defined]
                                        b.container_id)  # type: ignore[attr-defined]

        unclaimed = wait_for(lambda: pool_containers(m), what="the pool to refill")
        sessions = [s.container_id, a.container_id, b.container_id,  # type: ignore[attr-defined]
                    odd.container_id]
    finally:
        m.close()
    for cid in [*unclaimed, *sessions]:
        assert wait_gone(m.backend, cid), f"{cid[:12]} survived manager.close()"
    assert pool_containers(m) == []
    m.backend.client.close()


def test_cleanup_removes_idle_sessions(wait_gone) -> None:
    cleaned: list[dict] = []
    with SandboxManager(idle_timeout=0.5, cleanup_interval=0, reap_on_start=False) as m:
        m.on("session:cleanup", cleaned.append)
        s = m.open_session()
        report = m.cleanup()
        assert report.idle == () and m.backend.state(s.container_id).running
        time.sleep(1.0)
        report = m.cleanup()
        assert report.idle == (s.session_id,)
        assert report.dead == ()
        assert wait_gone(m.backend, s.container_id)
        assert m.list_sessions() == []
        assert {"session_id": s.session_id, "reason": "idle"} in cleaned


def test_cleanup_keeps_active_sessions() -> None:
    with SandboxManager(idle_timeout=1.5, cleanup_interval=0, reap_on_start=False) as m:
        s = m.open_session()
        for _ in range(3):
            time.sleep(0.6)
            s.execute_command(["true"])  # activity resets the idle clock
        assert m.cleanup().idle == ()
        assert m.backend.state(s.container_id).running


def test_cleanup_drops_dead_sessions() -> None:
    with SandboxManager(cleanup_interval=0, reap_on_start=False) as m:
        s = m.open_session()
        m.backend.api.request("POST", f"/containers/{s.container_id}/kill")
        wait_for(lambda: not s.alive, 10, "the channel to notice")
        report = m.cleanup()
        assert report.dead == (s.session_id,)
        assert m.list_sessions() == []


def test_background_cleanup_thread(wait_gone) -> None:
    cleaned: list[dict] = []
    with SandboxManager(idle_timeout=0.3, cleanup_interval=0.2, reap_on_start=False) as m:
        m.on("session:cleanup", cleaned.append)
        s = m.open_session()
        wait_for(lambda: cleaned, 10, "the cleanup thread")
        assert cleaned == [{"session_id": s.session_id, "reason": "idle"}]
        assert m.list_sessions() == []
        assert wait_gone(m.backend, s.container_id)


def test_reaper_removes_orphan_of_dead_owner(manager, session, a_dead_pid, wait_gone) -> None:
    """Other processes on this engine run reapers too and may take the orphan first: then
    the scenario is repeated. If *our* reap() misses it, the container is still there."""
    backend = manager.backend
    for _attempt in range(5):
        sid = secrets.token_hex(6)
        name = f"sandbox-kernel-test-orphan-{sid}"
        labels = {**owner_labels(Owner(host_id(), a_dead_pid, 1)), LABEL_SESSION: sid}
        spec = ContainerSpec(image=default_image(), name=name, limits=Limits(), labels=labels)
        cid = backend.create(spec, started=True)
        try:
            dry = {r.container_id: r for r in reap(backend, dry_run=True)}
            if cid not in dry and not backend.state(cid).exists:
                continue  # a foreign reaper was faster
            assert cid in dry, "dry run did not find the orphan"
            assert backend.state(cid).exists, "dry run removed something"
            reaped = {r.container_id: r for r in reap(backend)}
            if cid not in reaped and not backend.state(cid).exists:
                continue  # a foreign reaper was faster
            assert cid in reaped, "reap() left the orphan of a dead owner"
            assert reaped[cid].reason == f"owner process {a_dead_pid} is gone"
            assert reaped[cid].name == name
            assert wait_gone(backend, cid)
            # our own live session is never touched
            assert session.container_id not in reaped
            assert backend.state(session.container_id).running
            assert session.execute_command(["true"]).exit_code == 0
            return
        finally:
            backend.remove(cid)
    pytest.fail("other processes' reapers removed the orphan every time; cannot test reap()")


def test_reaper_never_touches_unlabelled_containers(manager, a_dead_pid) -> None:
    api = manager.backend.api
    # looks like ours (dead owner labels) but lacks the session label
    cid = api.create_container({
        "Image": default_image(), "OpenStdin": True, "HostConfig": {"NetworkMode": "none"},
        "Labels": {"sandbox_kernel.owner_pid": str(a_dead_pid),
                   "sandbox_kernel.owner_host": "x", "test": "unlabelled"}}, None)
    api.start(cid)

    def status() -> str:
        return str(api.inspect_container(cid)["State"]["Status"])
    try:
        wait_for(lambda: status() == "running", 20, "the plain container to run")
        reaped = reap(manager.backend)
        assert cid not in [r.container_id for r in reaped]
        assert status() == "running"
        assert cid not in [r.id for r in manager.backend.list_owned()]
    finally:
        api.remove_container(cid, force=True)
