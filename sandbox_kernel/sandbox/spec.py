"""Frozen values of the session layer: limits (parsed strictly by units.py), results and
reports."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, Literal

from ..errors import LimitError
from .units import (
    GiB,
    KiB,
    MiB,
    check_range,
    format_seconds,
    format_size,
    parse_duration,
    parse_number,
    parse_size,
)


@dataclass(frozen=True)
class LimitRule:
    """How one limit is parsed and shown, and the range no configuration may leave."""

    kind: Literal["size", "number", "count", "duration"]
    lo: float
    hi: float
    help: str

    def parse(self, value: object, name: str, hi: float | None = None) -> Any:
        top = self.hi if hi is None else hi
        if self.kind == "size":
            return parse_size(value, name, int(self.lo), int(top))
        if self.kind == "duration":
            return parse_duration(value, name, self.lo, top)
        number = parse_number(value, name, self.lo, top, integer=self.kind == "count")
        return int(number) if self.kind == "count" else number

    def show(self, value: float) -> str:
        if self.kind == "size":
            return format_size(value)
        if self.kind == "duration":
            return format_seconds(value)
        return f"{value:g}"


RULES: dict[str, LimitRule] = {
    "memory": LimitRule("size", 32 * MiB, 64 * GiB, "memory of the whole sandbox, no swap"),
    "cpus": LimitRule("number", 0.05, 64, "CPU cores (cgroup quota)"),
    "pids": LimitRule("count", 8, 4096, "processes and threads (pids cgroup)"),
    "timeout": LimitRule("duration", 1, 7 * 86400, "wall-clock time per cell or command"),
    "cpu_time": LimitRule("duration", 1, 7 * 86400, "CPU time per cell"),
    "file_size": LimitRule("size", 1 * MiB, 16 * GiB, "largest file a process may write"),
    "output": LimitRule("size", 1 * KiB, 1 * GiB, "output kept per cell"),
    "sandbox_size": LimitRule("size", 1 * MiB, 64 * GiB, "/sandbox tmpfs (counts as memory)"),
    "tmp_size": LimitRule("size", 1 * MiB, 64 * GiB, "/tmp tmpfs (counts as memory)"),
    "packages_size": LimitRule("size", 1 * MiB, 64 * GiB,
                               "tmpfs of packages installed live (counts as memory)"),
}
#: Limits that can change on a running container without losing state.
LIVE_LIMITS = ("memory", "cpus", "pids", "timeout", "cpu_time", "output")


@dataclass(frozen=True)
class Limits:
    """Resource limits of one sandbox. Sizes in bytes, durations in seconds."""

    memory: int = 512 * MiB
    cpus: float = 1.0
    pids: int = 20
    timeout: float = 300.0
    cpu_time: float = 300.0
    file_size: int = 1 * GiB
    output: int = 4 * MiB
    sandbox_size: int = 256 * MiB
    tmp_size: int = 64 * MiB
    packages_size: int = 1 * GiB

    def __post_init__(self) -> None:
        for f in fields(self):
            rule = RULES[f.name]
            value = getattr(self, f.name)
            allowed = f"{rule.show(rule.lo)} to {rule.show(rule.hi)}"
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise LimitError(f"{f.name}: expected a number, got {type(value).__name__} "
                                 f"(allowed: {allowed})")
            if not math.isfinite(value):
                raise LimitError(f"{f.name}: {value} is not a finite number (allowed: "
                                 f"{allowed})")
            check_range(f.name, value, rule.lo, rule.hi, rule.show)

    @classmethod
    def widest(cls) -> Limits:
        """Every limit at the top of its allowed range: the ceilings when none are set."""
        values: dict[str, Any] = {name: rule.hi for name, rule in RULES.items()}
        return cls(**values)

    def changed(self, ceilings: Limits | None = None, **values: object) -> Limits:
        """A copy with some limits parsed from text ('512m', '2m'), refused past ceilings."""
        updates: dict[str, Any] = {}
        for name, value in values.items():
            key = name.replace("-", "_")
            rule = RULES.get(key)
            if rule is None:
                known = ", ".join(n.replace("_", "-") for n in RULES)
                raise LimitError(f"unknown limit {name[:30]!r}; known limits: {known}")
            hi = getattr(ceilings, key) if ceilings is not None else None
            updates[key] = rule.parse(value, key.replace("_", "-"), hi)
        return replace(self, **updates)

    def check_within(self, ceilings: Limits) -> None:
        for f in fields(self):
            rule = RULES[f.name]
            value, top = getattr(self, f.name), getattr(ceilings, f.name)
            if value > top:
                raise LimitError(
                    f"{f.name.replace('_', '-')} {rule.show(value)} is over the administrator's "
                    f"ceiling of {rule.show(top)} (allowed: {rule.show(rule.lo)} to "
                    f"{rule.show(top)})"
                )

    def describe(self) -> dict[str, str]:
        return {f.name.replace("_", "-"): RULES[f.name].show(getattr(self, f.name))
                for f in fields(self)}

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ExecResult:
    """Outcome of a shell command (the seed's executeCommand), with honest limit flags."""

    exit_code: int
    stdout: str
    stderr: str
    duration_ms: float
    timed_out: bool = False
    oom_killed: bool = False
    interrupted: bool = False
    truncated_bytes: int = 0

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not (self.timed_out or self.oom_killed)


Verdict = Literal["ok", "error", "timeout", "cpu_time", "oom", "interrupted", "crashed"]


@dataclass(frozen=True)
class CellResult:
    """Outcome of code run in a session's interpreter; outputs went to the event callback."""

    verdict: Verdict
    duration_ms: float
    cpu_seconds: float | None = None
    peak_memory: int = 0
    state_lost: bool = False
    message: str = ""
    dropped_chars: int = 0
    dropped_outputs: int = 0
    exit_signal: str | None = None

    @property
    def ok(self) -> bool:
        return self.verdict == "ok"


@dataclass(frozen=True)
class Health:
    """A resource snapshot of one sandbox, read from its cgroup by the agent."""

    memory_usage: int
    memory_limit: int | None
    memory_percent: float
    cpu_percent: float
    pids: int
    pids_limit: int | None
    uptime_s: float
    oom_kills: int
    status: Literal["healthy", "unhealthy"]
    reason: str = ""


@dataclass(frozen=True)
class SessionInfo:
    """What the manager knows about one session (the seed's listSessions entry)."""

    session_id: str
    container_id: str
    image: str
    created_at: float
    last_activity_at: float
    memory_limit: int
    cpu_limit: float
    pids_limit: int
    alive: bool


@dataclass(frozen=True)
class FileInfo:
    """One directory entry inside the sandbox (links are reported, never followed)."""

    name: str
    type: Literal["file", "dir", "symlink", "other"]
    size: int
    mtime: float
    mode: int = 0o644


@dataclass(frozen=True)
class FileOp:
    """The seed's fileOperation request: read, write, delete or list one path."""

    type: Literal["read", "write", "delete", "list"]
    path: str
    content: str | bytes | None = None


@dataclass(frozen=True)
class ContainerSpec:
    """Everything a backend needs to create one hardened sandbox container."""

    image: str
    name: str
    limits: Limits
    labels: dict[str, str] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    network: str = "none"
    #: The engine's OCI runtime for this container (e.g. runsc); None: the engine's default.
    runtime: str | None = None
