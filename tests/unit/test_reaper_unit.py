"""Who owns a container, and which of ours the reaper removes (hand-made records)."""

from __future__ import annotations

import os
import socket
import time

import pytest

from sandbox_kernel.errors import SandboxError
from sandbox_kernel.sandbox.backend import (
    LABEL_CREATED,
    LABEL_OWNER_HOST,
    LABEL_OWNER_PID,
    LABEL_OWNER_START,
    LABEL_POOL,
    LABEL_SESSION,
    ContainerRecord,
)
from sandbox_kernel.sandbox.reaper import (
    POOL_PREFIX,
    STALE_CREATED_S,
    Owner,
    host_id,
    owner_labels,
    owner_of,
    process_start,
    reap,
    stale_reason,
)

NOW = time.time()
TTL = 3600.0
ME = Owner.current()


def record(status: str = "running", *, name: str = "sandbox-kernel-x", owner: Owner | None = ME,
           age: float = 10.0, hostname: str | None = None, **extra: str) -> ContainerRecord:
    labels = {LABEL_SESSION: "abcdef012345", LABEL_CREATED: f"{NOW - age:.3f}", **extra}
    if owner is not None:
        labels[LABEL_OWNER_HOST] = hostname or socket.gethostname()
        labels[LABEL_OWNER_PID] = str(owner.pid)
        labels[LABEL_OWNER_START] = str(owner.start)
    return ContainerRecord(id="c" * 64, name=name, status=status, labels=labels)


def test_current_owner_is_alive() -> None:
    assert ME.pid == os.getpid()
    assert ME.start == process_start(os.getpid()) and ME.start > 0
    assert ME.host == host_id()
    assert ME.alive() is True


def test_dead_and_reused_pids(a_dead_pid: int) -> None:
    assert process_start(a_dead_pid) is None
    assert Owner(host_id(), a_dead_pid, 1).alive() is False
    # same pid, other start time: the pid was reused by someone else
    assert Owner(host_id(), os.getpid(), ME.start + 1).alive() is False
    assert Owner("00000000", a_dead_pid, 1).alive() is None


def test_owner_labels_roundtrip() -> None:
    labels = owner_labels(ME)
    assert labels[LABEL_OWNER_PID] == str(ME.pid)
    assert abs(float(labels[LABEL_CREATED]) - time.time()) < 5
    rec = ContainerRecord("id", "some-name", "running", {**labels, LABEL_SESSION: "s"})
    assert owner_of(rec) == ME


def test_owner_from_claimed_name_wins_over_labels(a_dead_pid: int) -> None:
    creator = Owner(host_id(), a_dead_pid, 42)
    rec = record(name=ME.container_name("0123456789ab"), owner=creator)
    assert owner_of(rec) == ME
    assert stale_reason(rec, NOW, TTL) is None


def test_claimed_name_parsing() -> None:
    rec = record(name="sandbox-kernel-0123456789ab.deadbeef-1234-5678", owner=None)
    assert owner_of(rec) == Owner("deadbeef", 1234, 5678)
    # not the claimed pattern: the labels decide
    for name in ("sandbox-kernel-0123456789ab.deadbeef-1234", "sandbox-kernel-XYZ.deadbeef-1-2",
                 POOL_PREFIX + "0123456789ab", "x-sandbox-kernel-0123456789ab.deadbeef-1-2"):
        assert owner_of(record(name=name, owner=None)) is None, name


def test_owner_of_without_or_with_bad_labels() -> None:
    assert owner_of(record(owner=None)) is None
    rec = record(owner=None, **{LABEL_OWNER_HOST: "h", LABEL_OWNER_PID: "not-a-pid"})
    assert owner_of(rec) is None
    rec = record(owner=None, **{LABEL_OWNER_HOST: "h", LABEL_OWNER_PID: "12"})
    assert owner_of(rec) == Owner(host_id("h"), 12, 0)


@pytest.mark.parametrize("status", ["exited", "dead"])
def test_exited_or_dead_is_stale(status: str) -> None:
    assert stale_reason(record(status), NOW, TTL) == f"container {status}"


def test_never_started() -> None:
    old = record("created", age=STALE_CREATED_S + 5)
    assert stale_reason(old, NOW, TTL) == "container was never started"
    young = record("created", age=5)
    assert stale_reason(young, NOW, TTL) is None


def test_dead_owner(a_dead_pid: int) -> None:
    rec = record(owner=Owner(host_id(), a_dead_pid, 1))
    assert stale_reason(rec, NOW, TTL) == f"owner process {a_dead_pid} is gone"


def test_reused_pid_owner() -> None:
    rec = record(owner=Owner(host_id(), os.getpid(), ME.start + 1))
    assert stale_reason(rec, NOW, TTL) == f"owner process {os.getpid()} is gone"


def test_live_owner_is_kept() -> None:
    assert stale_reason(record(), NOW, TTL) is None
    assert stale_reason(record("paused"), NOW, TTL) is None


def test_other_host_is_kept(a_dead_pid: int) -> None:
    rec = record(owner=Owner("x", a_dead_pid, 1), hostname="some-other-host.example")
    assert owner_of(rec) is not None and owner_of(rec).alive() is None  # type: ignore[union-attr]
    assert stale_reason(rec, NOW, TTL) is None


def test_unknown_owner_is_kept() -> None:
    assert stale_reason(record(owner=None), NOW, TTL) is None


def test_pool_ttl() -> None:
    pool = {LABEL_POOL: "k" * 16}
    old = record(name=POOL_PREFIX + "0123456789ab", age=TTL + 1, **pool)
    assert stale_reason(old, NOW, TTL) == f"unclaimed pool container older than {TTL:g} s"
    young = record(name=POOL_PREFIX + "0123456789ab", age=TTL - 60, **pool)
    assert stale_reason(young, NOW, TTL) is None
    # claimed (renamed away from the pool prefix): no longer subject to the pool TTL
    claimed = record(name=ME.container_name("0123456789ab"), age=TTL + 1, **pool)
    assert stale_reason(claimed, NOW, TTL) is None


def test_bad_created_label_does_not_crash() -> None:
    rec = record("created", **{LABEL_CREATED: "yesterday"})
    assert stale_reason(rec, NOW, TTL) is None


class FakeBackend:
    """Just enough Backend for reap(): list_owned and remove."""

    def __init__(self, records: list[ContainerRecord], fail: set[str] = frozenset()) -> None:
        self.records = records
        self.removed: list[str] = []
        self.fail = fail

    def list_owned(self, all_states: bool = True) -> list[ContainerRecord]:
        return list(self.records)

    def remove(self, container_id: str) -> None:
        if container_id in self.fail:
            raise SandboxError("engine refused")
        self.removed.append(container_id)

    def sweep_links(self, live_sessions: set[str]) -> None:
        self.swept = live_sessions


def _recs(a_dead_pid: int) -> list[ContainerRecord]:
    def r(cid: str, **kw: object) -> ContainerRecord:
        base = record(**kw)  # type: ignore[arg-type]
        return ContainerRecord(cid, base.name, base.status, {**base.labels, LABEL_SESSION: cid})

    return [
        r("live"),
        r("exited", status="exited"),
        r("orphan", owner=Owner(host_id(), a_dead_pid, 1)),
        r("elsewhere", owner=Owner("x", a_dead_pid, 1), hostname="other.example"),
    ]


def test_reap_removes_only_stale(a_dead_pid: int) -> None:
    backend = FakeBackend(_recs(a_dead_pid))
    reaped = reap(backend)  # type: ignore[arg-type]
    assert sorted(backend.removed) == ["exited", "orphan"]
    assert {r.container_id: r.reason for r in reaped} == {
        "exited": "container exited", "orphan": f"owner process {a_dead_pid} is gone"}
    kept = {r.id for r in backend.records} - {"exited", "orphan"}
    assert kept and backend.swept == kept  # link directories of the removed ones go too


def test_reap_dry_run_and_keep(a_dead_pid: int) -> None:
    backend = FakeBackend(_recs(a_dead_pid))
    reaped = reap(backend, dry_run=True)  # type: ignore[arg-type]
    assert backend.removed == []
    assert sorted(r.container_id for r in reaped) == ["exited", "orphan"]
    reaped = reap(backend, keep=frozenset({"orphan"}))  # type: ignore[arg-type]
    assert backend.removed == ["exited"]
    assert [r.container_id for r in reaped] == ["exited"]


def test_reap_skips_what_the_engine_refuses(a_dead_pid: int) -> None:
    backend = FakeBackend(_recs(a_dead_pid), fail={"exited"})
    reaped = reap(backend)  # type: ignore[arg-type]
    assert [r.container_id for r in reaped] == ["orphan"]
