"""The interface between sessions and the container engine.

A Backend creates, starts, attaches to, resizes and removes sandbox containers. `Session`
calls the per-container methods; `SandboxManager`, `Pool` and `Reaper` call `list_owned`,
`rename` and `remove`. Implementations translate their engine's errors into
`sandbox_kernel.errors` at this boundary.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field

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
    """The agent's attached stdio: bytes down to its stdin, (stream, bytes) up from it."""

    @abstractmethod
    def send(self, data: bytes) -> None:
        """Write to the agent's stdin. Called by Channel, under its write lock."""

    @abstractmethod
    def frames(self) -> Iterator[tuple[int, bytes]]:
        """Yield (1 for stdout | 2 for stderr, chunk) until EOF. Called by Channel's reader."""

    @abstractmethod
    def close(self) -> None:
        """Close both directions; the agent sees EOF and exits. Safe to call twice."""


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

    @abstractmethod
    def versions(self) -> dict[str, str]:
        """Engine facts for `doctor`: server version, cgroup version, runtime."""
