"""Who owns a sandbox container, and removal of ours whose owner is gone.

A container's owner is a process identified by host, pid and start time (a pid alone is
reused). The creator is in the labels; a container claimed from a pool carries its
claimer in its name, since labels cannot change. The reaper only ever looks at
containers carrying our session label.
"""

from __future__ import annotations

import hashlib
import os
import re
import socket
import time
from dataclasses import dataclass

from ..errors import SandboxError
from .backend import (
    LABEL_CREATED,
    LABEL_OWNER_HOST,
    LABEL_OWNER_PID,
    LABEL_OWNER_START,
    LABEL_POOL,
    LABEL_SESSION,
    Backend,
    ContainerRecord,
)

NAME_PREFIX = "sandbox-kernel-"
POOL_PREFIX = "sandbox-kernel-pool-"
_CLAIMED = re.compile(r"sandbox-kernel-([0-9a-f]{12})\.([0-9a-f]{8})-([0-9]+)-([0-9]+)")
#: A container that exists but never started is removed after this long.
STALE_CREATED_S = 120.0


def host_id(hostname: str | None = None) -> str:
    return hashlib.sha256((hostname or socket.gethostname()).encode()).hexdigest()[:8]


def process_start(pid: int) -> int | None:
    """Start time of a process in clock ticks since boot, or None if it does not exist."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read().decode("ascii", "replace")
    except OSError:
        return None
    fields = raw[raw.rfind(")") + 2 :].split()
    try:
        return int(fields[19])
    except (IndexError, ValueError):
        return None


@dataclass(frozen=True)
class Owner:
    """A process that owns sandboxes."""

    host: str  # host_id()
    pid: int
    start: int

    @classmethod
    def current(cls) -> Owner:
        pid = os.getpid()
        return cls(host_id(), pid, process_start(pid) or 0)

    def token(self) -> str:
        return f"{self.host}-{self.pid}-{self.start}"

    def container_name(self, session_id: str) -> str:
        return f"{NAME_PREFIX}{session_id}.{self.token()}"

    def alive(self) -> bool | None:
        """True/False for an owner on this host; None if it lives elsewhere (unknown)."""
        if self.host != host_id():
            return None
        start = process_start(self.pid)
        return start is not None and self.start in (0, start)


def owner_labels(owner: Owner) -> dict[str, str]:
    return {
        LABEL_OWNER_HOST: socket.gethostname(),
        LABEL_OWNER_PID: str(owner.pid),
        LABEL_OWNER_START: str(owner.start),
        LABEL_CREATED: f"{time.time():.3f}",
    }


def owner_of(record: ContainerRecord) -> Owner | None:
    """The process a container belongs to now: its claimer (name) or its creator (labels)."""
    m = _CLAIMED.fullmatch(record.name)
    if m:
        return Owner(m.group(2), int(m.group(3)), int(m.group(4)))
    lb = record.labels
    try:
        return Owner(host_id(lb[LABEL_OWNER_HOST]), int(lb[LABEL_OWNER_PID]),
                     int(lb.get(LABEL_OWNER_START, "0")))
    except (KeyError, ValueError):
        return None


@dataclass(frozen=True)
class Reaped:
    """A container the reaper removed (or would remove, in a dry run), and why."""

    container_id: str
    name: str
    reason: str


def stale_reason(record: ContainerRecord, now: float, pool_ttl: float) -> str | None:
    """Why a container of ours should go, or None if it should stay."""
    try:
        age = now - float(record.labels.get(LABEL_CREATED, "0"))
    except ValueError:
        age = 0.0
    if record.status in ("exited", "dead"):
        return f"container {record.status}"
    if record.status == "created" and age > STALE_CREATED_S:
        return "container was never started"
    if LABEL_POOL in record.labels and record.name.startswith(POOL_PREFIX) and age > pool_ttl:
        return f"unclaimed pool container older than {pool_ttl:g} s"
    owner = owner_of(record)
    if owner is not None and owner.alive() is False:
        return f"owner process {owner.pid} is gone"
    return None


def reap(backend: Backend, *, dry_run: bool = False, pool_ttl: float = 3600.0,
         keep: frozenset[str] = frozenset()) -> list[Reaped]:
    """Remove our containers that are exited, never started, or whose owner is gone."""
    now = time.time()
    removed: list[Reaped] = []
    records = backend.list_owned()
    for record in records:
        if record.id in keep:
            continue
        reason = stale_reason(record, now, pool_ttl)
        if reason is None:
            continue
        if not dry_run:
            try:
                backend.remove(record.id)
            except SandboxError:
                continue
        removed.append(Reaped(record.id, record.name, reason))
    if not dry_run:
        gone = {r.container_id for r in removed}
        backend.sweep_links({r.labels.get(LABEL_SESSION, "") for r in records
                             if r.id not in gone})
    return removed
