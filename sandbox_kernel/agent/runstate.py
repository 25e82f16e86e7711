"""One cell in flight on the agent: its limits, timers, output budget and what it used.

The state that `Cells` (cells.py) keeps per run; the verdict messages are the agent's own
wording of the limits it enforced (docs/architecture.md, "Who enforces what").
"""

from __future__ import annotations

import codecs
import time
from dataclasses import dataclass, field
from typing import Any

from . import procs
from .loop import Timer
from .spawn import new_token
from .workers import Worker

MESSAGES = {"timeout": "cell timed out after {t} s",
             "cpu_time": "cell used its {c} s CPU-time budget"}


def fmt_s(value: float) -> str:
    return str(int(value)) if value == int(value) else f"{value:g}"


@dataclass
class Run:
    """One cell in a worker, with the limits the agent enforces on it."""

    id: int
    token: int
    worker: Worker
    timeout: float
    cpu_budget: float
    cap: int
    grace: float
    started: float = field(default_factory=time.monotonic)
    start_tick: int = field(default_factory=procs.now_tick)
    cpu_base: int = 0
    verdict: str | None = None
    interrupted: bool = False
    kill_timer: Timer | None = None
    tick_timer: Timer | None = None
    guard_timer: Timer | None = None
    timers: list[Timer] = field(default_factory=list)
    used: int = 0
    dropped: int = 0  # characters of stream text past the cap
    dropped_outputs: int = 0  # rich outputs past the cap
    peak: int = 0
    warned: bool = False
    oom_base: int = 0
    claimed: dict[str, Any] | None = None  # the worker's `done`, until its sync answers
    sync: int = field(default_factory=new_token)
    synced: bool = False
    out_of_memory: bool = False  # the agent stopped it near the limit (no cgroup to)
    decoders: dict[str, codecs.IncrementalDecoder] = field(default_factory=dict)

    def message(self) -> str:
        return MESSAGES.get(self.verdict or "", "").format(t=fmt_s(self.timeout),
                                                            c=fmt_s(self.cpu_budget))
