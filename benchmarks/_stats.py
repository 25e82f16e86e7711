"""Shared timing helpers of the benchmark scripts (run them as scripts: this dir is on the path)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def summarize(samples: list[float]) -> dict[str, float]:
    """Median and p95 of millisecond samples."""
    s = sorted(samples)
    return {"median_ms": statistics.median(s), "p95_ms": s[min(len(s) - 1, int(len(s) * 0.95))],
            "n": len(s)}


def timed(fn: Callable[[], object], n: int, warmup: int = 2) -> dict[str, float]:
    """Call fn `warmup` times, then n timed times: milliseconds, summarized."""
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t) * 1000)
    return summarize(samples)
