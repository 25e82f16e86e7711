"""The interface between sessions and the container engine.

A Backend creates, starts, attaches to, resizes and removes sandbox containers. `Session`
calls the per-container methods; `SandboxManager`, `Pool` and `Reaper` call `list_owned`,
`rename` and `remove`. Implementations translate their engine's errors into
`sandbox_kernel.errors` at this boundary.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path

from .spec import ContainerSpec, Limits

#: Label keys every container of ours carries; cleanup never touches anything without them.
LABEL_SESSION = "sandbox_kernel.session"
LABEL_OWNER_HOST = "sandbox_kernel.owner_host"
LABEL_OWNER_PID = "sandbox_kernel.owner_pid"
LABEL_OWNER_START = "sandbox_kernel.owner_start"
LABEL_CREATED = "sandbox_kernel.created_at"
LABEL_VERSION = "sandbox_kernel.version"
LABEL_POOL = "sandbox_kernel.pool"


class AgentStream(ABC):
    """The agent's attached stdio: bytes down to its stdin, (stream, bytes) up from it.

    Made by `Backend.attach` in any thread; used by one Channel on one event loop.
    """

    @abstractmethod
    async def read(self) -> tuple[int, bytes]:
        """The next (1 for stdout | 2 for stderr, chunk); (0, b"") at EOF. Channel's reader."""

    @abstractmethod
    async def write(self, data: bytes) -> None:
        """Write to the agent's stdin, waiting while the engine is backed up. Channel only."""

    @abstractmethod
    def close(self) -> None:
        """Close both directions; the agent sees EOF and exits. Safe to call twice."""


@dataclass(frozen=True)
class RuntimeTraits:
    """What a container runtime can do for limits and health (docs/engines.md)."""

    kind: str = "runc"
    #: The host's pids cgroup holds pids * pids_factor + pids_overhead tasks: the runtime's
    #: own threads count there too (gVisor's Sentry, and on ptrace a tracer per thread).
    pids_factor: int = 1
    pids_overhead: int = 0
    #: Memory, CPU and pids limits can change on a running container.
    live_update: bool = True
    #: The sandbox sees its own cgroup files (gVisor and Kata show none).
    cgroup_files: bool = True
    #: The user's pids limit is enforced inside (RLIMIT_NPROC), not by the host's cgroup.
    pids_inside: bool = False


@dataclass(frozen=True)
class ContainerState:
    """What the engine says about a container now."""

    exists: bool
    status: str = "missing"  # created | running | paused | exited | dead | missing
    oom_killed: bool = False
    exit_code: int | None = None

    @property
    def running(self) -> bool:
        return self.status == "running"


@dataclass(frozen=True)
class ContainerRecord:
    """One of our containers as listed by the engine."""

    id: str
    name: str
    status: str
    labels: dict[str, str] = field(default_factory=dict)


class Backend(ABC):
    """Where sandboxes run. One instance is shared by a manager and its sessions."""

    #: Sessions refuse an agent that runs as the same user as cell code (not isolated).
    requires_separation = True

    @abstractmethod
    def check(self, image: str) -> None:
        """Raise EngineUnavailable or ImageMissing unless `image` can be started."""

    @abstractmethod
    def image_labels(self, image: str) -> dict[str, str]:
        """Labels of a local image; raise ImageMissing if it is not there."""

    @abstractmethod
    def create(self, spec: ContainerSpec, started: bool = False) -> str:
        """Create (and optionally start, unattached) a container; return its id."""

    @abstractmethod
    def attach(self, container_id: str) -> AgentStream:
        """Attach to the agent's stdio. The first attach owns stdin: closing it ends the agent."""

    @abstractmethod
    def start(self, container_id: str) -> None:
        """Start a created container."""

    @abstractmethod
    def rename(self, container_id: str, name: str) -> bool:
        """Rename atomically; False if the container is gone or the name is taken."""

    @abstractmethod
    def update(self, container_id: str, limits: Limits) -> None:
        """Apply memory, CPU and pids limits to a running container without restarting it."""

    @abstractmethod
    def state(self, container_id: str) -> ContainerState:
        """Inspect a container."""

    @abstractmethod
    def remove(self, container_id: str) -> None:
        """Force-remove a container; no error if it is already gone."""

    @abstractmethod
    def list_owned(self, all_states: bool = True) -> list[ContainerRecord]:
        """Every container carrying our session label, on this engine."""

    @abstractmethod
    def exec_in(self, container_id: str, argv: list[str]) -> tuple[int, bytes]:
        """Run a process beside the agent (for host tools such as `health`); (code, output)."""

    def link_dir(self, container_id: str, session_id: str) -> tuple[Path, str] | None:
        """The host directory this container sees as its direct-link directory, and that
        directory's path inside it; None: frames stay on the attach. Session.connect."""
        return None

    def link_done(self, container_id: str, session_id: str) -> None:
        """The link is up (or refused): its directory may go. Session.connect."""
        return None

    def sweep_links(self, live_sessions: set[str]) -> None:
        """Remove link directories of sessions that no longer exist. The reaper."""
        return None

    @abstractmethod
    def versions(self) -> dict[str, str]:
        """Engine facts for `doctor`: engine name and version, cgroup version, runtimes."""

    @abstractmethod
    def check_runtime(self, runtime: str | None) -> RuntimeTraits:
        """The traits of `runtime` (None: the engine's default); ConfigError if unknown."""
