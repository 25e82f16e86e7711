"""Sizes, numbers and durations as users type them: strict parsing and short formatting.

Limit parsing is a security boundary (values come from magics typed by users, and from
configuration), so it accepts ASCII digits only and refuses NaN, infinities, zero,
negatives and anything past the allowed range, naming the range in the error.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..errors import LimitError

KiB, MiB, GiB, TiB = 1024, 1024**2, 1024**3, 1024**4
_UNITS: dict[str, float] = {"": 1, "b": 1, "k": KiB, "m": MiB, "g": GiB, "t": TiB}
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


def _decimal(whole: str, frac: str | None) -> float:
    """The number a pattern's digit groups spell ('12', '5' -> 12.5), without float()."""
    return float(int(whole) + (int(frac) / 10 ** len(frac) if frac else 0))


def check_range(name: str, value: float, lo: float, hi: float, show: Any) -> None:
    """A LimitError naming the range if `value` is outside it."""
    if not (lo <= value <= hi):
        raise LimitError(f"{name} must be between {show(lo)} and {show(hi)} (got {show(value)})")


@dataclass(frozen=True)
class _Scale:
    """A kind of value typed as a decimal and a unit: its pattern (groups: whole, fraction,
    unit), what each unit is worth, how values are shown, and an example for errors."""

    kind: str
    pattern: re.Pattern[str]
    units: dict[str, float]
    show: Callable[[float], str]
    example: str

    def parse(self, value: object, name: str, lo: float, hi: float) -> float:
        span = self.show(lo), self.show(hi)
        text = _text(value, name, f"{span[0]} to {span[1]}")
        m = self.pattern.fullmatch(text)
        if not m:
            raise LimitError(f"{name}: {text[:40]!r} is not a {self.kind}; use e.g. "
                             f"{self.example} (between {span[0]} and {span[1]})")
        scaled = _decimal(m.group(1), m.group(2)) * self.units[str(m.group(3) or "").lower()]
        check_range(name, scaled, lo, hi, self.show)
        return scaled


_SIZES = _Scale("size", _SIZE, _UNITS, format_size, "512m or 2g")
_DURATIONS = _Scale("duration", _DURATION, _SECONDS, format_seconds, "120s, 5m or 1h")


def parse_size(value: object, name: str, lo: int, hi: int) -> int:
    """'512m', '1g', '1.5g', 268435456 -> bytes; binary units (m = MiB)."""
    return int(_SIZES.parse(value, name, lo, hi))


def parse_number(value: object, name: str, lo: float, hi: float, integer: bool = False) -> float:
    """A plain positive decimal: '0.5', '2', 64."""
    text = _text(value, name, f"{lo:g} to {hi:g}")
    m = _NUMBER.fullmatch(text)
    if not m or (integer and m.group(2)):
        kind = "a whole number" if integer else "a number"
        raise LimitError(f"{name}: {text[:40]!r} is not {kind} between {lo:g} and {hi:g}")
    number = _decimal(m.group(1), m.group(2))
    check_range(name, number, lo, hi, lambda v: f"{v:g}")
    return number


def parse_duration(value: object, name: str, lo: float, hi: float) -> float:
    """'120s', '2m', '1h', '300' (seconds) -> seconds."""
    return _DURATIONS.parse(value, name, lo, hi)
