"""Frozen values of the session layer: limits (with strict parsing), results and reports.

Limit parsing is a security boundary (values come from magics typed by users, and from
configuration), so it accepts ASCII digits only and refuses NaN, infinities, zero,
negatives and anything past the allowed range, naming the range in the error.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, Literal

from ..errors import LimitError

KiB, MiB, GiB, TiB = 1024, 1024**2, 1024**3, 1024**4
_UNITS = {"": 1, "b": 1, "k": KiB, "m": MiB, "g": GiB, "t": TiB}
_SIZE = re.compile(r"([0-9]{1,15})(?:\.([0-9]{1,6}))?([kmgt]?)(?:i?b)?", re.ASCII | re.I)
_NUMBER = re.compile(r"([0-9]{1,9})(?:\.([0-9]{1,6}))?", re.ASCII)
_DURATION = re.compile(r"([0-9]{1,9})(?:\.([0-9]{1,6}))?(ms|s|m|min|h)?", re.ASCII | re.I)
_SECONDS = {"": 1.0, "ms": 0.001, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}


def format_size(n: float) -> str:
    """512 MiB -> '512m'; the inverse of parse_size for whole units."""
    for unit, size in (("g", GiB), ("m", MiB), ("k", KiB)):
        if n >= size and n % size == 0:
            return f"{int(n // size)}{unit}"
    if n >= MiB:
        return f"{n / MiB:.1f}m"
    return f"{int(n)}b"


def human_size(n: float) -> str:
    """512 MiB -> '512 MB', 1.5 GiB -> '1.5 GB': for messages, not for parsing."""
    for unit, size in (("GB", GiB), ("MB", MiB), ("KB", KiB)):
        if n >= size:
            value = n / size
            return f"{value:.0f} {unit}" if value.is_integer() or value >= 100 else \
                f"{value:.1f} {unit}"
    return f"{int(n)} bytes"


def format_seconds(s: float) -> str:
    return f"{int(s)}s" if float(s).is_integer() else f"{s:g}s"


def _text(value: object, name: str, allowed: str) -> str:
    """The value as text; non-numbers and non-finite numbers are refused with the range."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise LimitError(f"{name}: expected a number, got {type(value).__name__} "
                         f"(allowed: {allowed})")
    text = str(value).strip()
    if isinstance(value, float) and not math.isfinite(value):
        raise LimitError(f"{name}: {text} is not a finite number (allowed: {allowed})")
    return text


def _check(name: str, value: float, lo: float, hi: float, show: Any) -> None:
    if not (lo <= value <= hi):
        raise LimitError(f"{name} must be between {show(lo)} and {show(hi)} (got {show(value)})")


def parse_size(value: object, name: str, lo: int, hi: int) -> int:
    """'512m', '1g', '1.5g', 268435456 -> bytes; binary units (m = MiB)."""
    text = _text(value, name, f"{format_size(lo)} to {format_size(hi)}")
    m = _SIZE.fullmatch(text)
    if not m:
        raise LimitError(
            f"{name}: {text[:40]!r} is not a size; use e.g. 512m or 2g "
            f"(between {format_size(lo)} and {format_size(hi)})"
        )
    whole, frac, unit = m.group(1), m.group(2) or "0", m.group(3).lower()
    size = (int(whole) + int(frac) / 10 ** len(frac)) * _UNITS[unit]
    _check(name, size, lo, hi, format_size)
    return int(size)


def parse_number(value: object, name: str, lo: float, hi: float, integer: bool = False) -> float:
    """A plain positive decimal: '0.5', '2', 64."""
    text = _text(value, name, f"{lo:g} to {hi:g}")
    m = _NUMBER.fullmatch(text)
    if not m or (integer and m.group(2)):
        kind = "a whole number" if integer else "a number"
        raise LimitError(f"{name}: {text[:40]!r} is not {kind} between {lo:g} and {hi:g}")
    number = float(int(m.group(1)) + (int(m.group(2)) / 10 ** len(m.group(2))
                                      if m.group(2) else 0))
    _check(name, number, lo, hi, lambda v: f"{v:g}")
    return number


def parse_duration(value: object, name: str, lo: float, hi: float) -> float:
    """'120s', '2m', '1h', '300' (seconds) -> seconds."""
    text = _text(value, name, f"{format_seconds(lo)} to {format_seconds(hi)}")
    m = _DURATION.fullmatch(text)
    if not m:
        raise LimitError(
            f"{name}: {text[:40]!r} is not a duration; use e.g. 120s, 5m or 1h "
            f"(between {format_seconds(lo)} and {format_seconds(hi)})"
        )
    frac = m.group(2) or "0"
    unit = _SECONDS[str(m.group(3) or "").lower()]
    seconds = float(int(m.group(1)) + int(frac) / 10 ** len(frac)) * unit
    _check(name, seconds, lo, hi, format_seconds)
    return seconds


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
            _check(f.name, value, rule.lo, rule.hi, rule.show)

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
