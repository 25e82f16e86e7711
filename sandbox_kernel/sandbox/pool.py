"""Warm sandboxes: containers started ahead of time, claimed atomically by renaming.

A pooled container runs its agent unattached, waiting for a first `hello`. Claiming it is a
`docker rename` from the pool name to the claimer's own name: the engine lets exactly one
rename win, so two sessions never share a container, even across processes. The first
attach then owns the agent's stdin, and with it the container's life.
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
import threading
from collections import deque

from ..errors import SandboxError
from .backend import LABEL_POOL, LABEL_SESSION, Backend
from .reaper import POOL_PREFIX, Owner
from .spec import ContainerSpec, Limits

log = logging.getLogger(__name__)
#: An unclaimed pooled sandbox's agent exits after this long (its keeper may have died).
CLAIM_TIMEOUT_S = 3600.0


def pool_key(image: str, limits: Limits, env: dict[str, str], runtime: str | None = None) -> str:
    """Containers are interchangeable only if image, limits, environment and runtime match."""
    numbers = {k: float(v) for k, v in limits.as_dict().items()}  # 1 and 1.0 are one limit
    parts: list[object] = [image, numbers, sorted(env.items())]
    if runtime:
        parts.append(runtime)
    blob = json.dumps(parts, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


class Pool:
    """Keeps `size` started containers ready for `claim()`; refills in the background."""

    def __init__(self, backend: Backend, image: str, limits: Limits, env: dict[str, str],
                 size: int, labels: dict[str, str], owner: Owner,
                 runtime: str | None = None) -> None:
        self.backend = backend
        self.image = image
        self.limits = limits
        self.env = env
        self.size = max(0, size)
        self.labels = labels
        self.owner = owner
        self.runtime = runtime
        self.key = pool_key(image, limits, env, runtime)
        self._ready: deque[tuple[str, str]] = deque()  # (container id, session id)
        self._lock = threading.Lock()
        self._filling = threading.Lock()  # one filler at a time, or both see room and add
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def matches(self, image: str, limits: Limits, env: dict[str, str],
                runtime: str | None = None) -> bool:
        return pool_key(image, limits, env, runtime) == self.key

    def start(self) -> None:
        if self.size and self._thread is None:
            self._thread = threading.Thread(target=self._fill_loop, name="sandbox-pool",
                                            daemon=True)
            self._thread.start()

    def prune(self) -> None:
        """Forget ready containers that another process claimed (renamed) or that died."""
        with self._lock:
            if not self._ready:
                return
        alive = {r.id for r in self.backend.list_owned(all_states=False)
                 if r.name.startswith(POOL_PREFIX) and r.status == "running"}
        with self._lock:
            self._ready = deque(item for item in self._ready if item[0] in alive)

    def fill_once(self) -> int:
        """Create containers until the pool is full; return how many were added.

        Fillers take turns (the background loop, a caller waiting for a full pool): each
        checks the room and creates under one lock, so the pool never exceeds its size.
        """
        with self._filling:
            return self._fill()

    def _fill(self) -> int:
        self.prune()
        added = 0
        while not self._stop.is_set():
            with self._lock:
                if len(self._ready) >= self.size:
                    return added
            sid = secrets.token_hex(6)
            spec = ContainerSpec(
                image=self.image, name=f"{POOL_PREFIX}{sid}", limits=self.limits,
                labels={**self.labels, LABEL_SESSION: sid, LABEL_POOL: self.key},
                env={**self.env, "SANDBOX_AGENT_CLAIM_TIMEOUT": str(int(CLAIM_TIMEOUT_S))},
                runtime=self.runtime,
            )
            cid = self.backend.create(spec, started=True)
            with self._lock:
                self._ready.append((cid, sid))
            added += 1
        return added

    def _fill_loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.fill_once()
            except SandboxError as exc:
                log.warning("could not refill the sandbox pool: %s", exc)
                self._stop.wait(5)
            self._wake.wait(2.0)
            self._wake.clear()

    def claim(self) -> tuple[str, str] | None:
        """Take a ready container for this owner: (container id, session id), or None."""
        while True:
            with self._lock:
                if not self._ready:
                    break
                cid, sid = self._ready.popleft()
            self._wake.set()
            if self.backend.rename(cid, self.owner.container_name(sid)):
                return cid, sid
        return self._claim_foreign()

    def _claim_foreign(self) -> tuple[str, str] | None:
        """Claim a matching container another process's pool started."""
        try:
            records = self.backend.list_owned(all_states=False)
        except SandboxError:
            return None
        for r in records:
            if r.labels.get(LABEL_POOL) == self.key and r.name.startswith(POOL_PREFIX) \
                    and r.status == "running":
                sid = r.labels.get(LABEL_SESSION, "")
                if self.backend.rename(r.id, self.owner.container_name(sid)):
                    return r.id, sid
        return None

    def close(self) -> None:
        """Stop refilling and remove this pool's unclaimed containers."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=60)
        with self._lock:
            ready = list(self._ready)
            self._ready.clear()
        for cid, sid in ready:
            # Rename first: if another process claimed it meanwhile, the rename fails.
            if self.backend.rename(cid, f"sandbox-kernel-closing-{sid}"):
                try:
                    self.backend.remove(cid)
                except SandboxError as exc:
                    log.warning("could not remove pooled sandbox %s: %s", cid[:12], exc)
