"""One cell in flight on the agent: its limits, timers, output budget and what it used.

The state that `Cells` (cells.py) keeps per run; the verdict messages are the agent's own
wording of the limits it enforced (docs/architecture.md, "Who enforces what").
"""

from __future__ import annotations

import codecs
import time
from typing import Any

from . import procs
from .loop import Timer
from .spawn import new_token
from .workers import Worker

MESSAGES = {"timeout": "cell timed out after {t} s",
             "cpu_time": "cell used its {c} s CPU-time budget"}


def fmt_s(value: float) -> str:
    return str(int(value)) if value == int(value) else f"{value:g}"


class Run:
    """One cell in a worker, with the limits the agent enforces on it."""

    __slots__ = ("cap", "claimed", "cpu_base", "cpu_budget", "decoders", "dropped",
                 "dropped_outputs", "grace", "guard_timer", "id", "interrupted", "kill_timer",
                 "oom_base", "out_of_memory", "peak", "start_tick", "started", "sync", "synced",
                 "tick_timer", "timeout", "timers", "token", "used", "verdict", "warned",
                 "worker")

    def __init__(self, *, id: int, token: int, worker: Worker, timeout: float,
                 cpu_budget: float, cap: int, grace: float, oom_base: int = 0) -> None:
        self.id, self.token, self.worker = id, token, worker
        self.timeout, self.cpu_budget, self.cap, self.grace = timeout, cpu_budget, cap, grace
        self.oom_base = oom_base
        self.started = time.monotonic()
        self.start_tick = procs.now_tick()
        self.cpu_base = 0
        self.verdict: str | None = None
        self.interrupted = False
        self.kill_timer: Timer | None = None
        self.tick_timer: Timer | None = None
        self.guard_timer: Timer | None = None
        self.timers: list[Timer] = []
        self.used = 0
        self.dropped = 0  # characters of stream text past the cap
        self.dropped_outputs = 0  # rich outputs past the cap
        self.peak = 0
        self.warned = False
        self.claimed: dict[str, Any] | None = None  # the worker's `done`, until its sync answers
        self.sync = new_token()
        self.synced = False
        self.out_of_memory = False  # the agent stopped it near the limit (no cgroup to)
        self.decoders: dict[str, codecs.IncrementalDecoder] = {}

    def message(self) -> str:
        return MESSAGES.get(self.verdict or "", "").format(t=fmt_s(self.timeout),
                                                            c=fmt_s(self.cpu_budget))
