"""Bundles in nbformat's canonical shape, before any MIME type is looked at.

nbformat allows a text type's value to be a string or a list of strings (frontends join
them), and a JSON type (`application/json`, `application/*+json`) any JSON value; here
JSON types must be an object or an array. Anything else is dropped, so no later check
can be bypassed by a value of another shape. Strings are bounded and lone surrogates
(unsendable as UTF-8) replaced.
"""

from __future__ import annotations

import math
import re
from typing import Any

_JSON_MIME = re.compile(r"application/(?:[a-z0-9.!#$&^_-]+\+)?json")
_MIME_KEY = re.compile(r"[a-z0-9][a-z0-9.!#$&^_+-]{0,126}/[a-z0-9][a-z0-9.!#$&^_+-]{0,126}")
_MAX_DEPTH = 64
MAX_TEXT = 1 << 24


def is_json_mime(mime: str) -> bool:
    return _JSON_MIME.fullmatch(mime) is not None


def valid_mime(mime: Any) -> bool:
    return isinstance(mime, str) and _MIME_KEY.fullmatch(mime) is not None


def clean_text(value: Any, limit: int = MAX_TEXT) -> str:
    """Text from the sandbox, bounded, with lone surrogates (unsendable) replaced."""
    if not isinstance(value, str):
        return ""
    text: str = value[:limit]
    if text.isascii():  # O(1) for the common case
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return text


def as_text(value: Any, limit: int = MAX_TEXT) -> str | None:
    """A text type's value: a str, or a list of str joined (as frontends do); else None."""
    if isinstance(value, str):
        return clean_text(value, limit)
    if isinstance(value, list) and all(isinstance(part, str) for part in value):
        total = 0
        parts = []
        for part in value:
            parts.append(part[: max(0, limit - total)])
            total += len(part)
            if total >= limit:
                break
        return clean_text("".join(parts), limit)
    return None


class _TooBig(Exception):
    pass


def as_json(value: Any, limit: int = MAX_TEXT) -> tuple[Any, int] | None:
    """A JSON type's value (object or array), copied with strings cleaned, and its size.

    None if it is not an object or array, nests deeper than 64, holds a non-finite number
    or a non-string key, or is larger than `limit` characters.
    """
    if not isinstance(value, dict | list):
        return None
    budget = [limit]
    try:
        return _copy(value, 0, budget), limit - budget[0]
    except _TooBig:
        return None


def _charge(budget: list[int], n: int) -> None:
    budget[0] -= n
    if budget[0] < 0:
        raise _TooBig


def _copy(value: Any, depth: int, budget: list[int]) -> Any:
    if depth > _MAX_DEPTH:
        raise _TooBig
    if isinstance(value, str):
        _charge(budget, len(value) + 2)
        return clean_text(value)
    if isinstance(value, bool) or value is None:
        _charge(budget, 5)
        return value
    if isinstance(value, int | float):
        if isinstance(value, float) and not math.isfinite(value):
            raise _TooBig
        _charge(budget, 8)
        return value
    if isinstance(value, list):
        _charge(budget, 2)
        return [_copy(v, depth + 1, budget) for v in value]
    if isinstance(value, dict):
        _charge(budget, 2)
        out = {}
        for key, v in value.items():
            if not isinstance(key, str):
                raise _TooBig
            _charge(budget, len(key) + 3)
            out[clean_text(key)] = _copy(v, depth + 1, budget)
        return out
    raise _TooBig
