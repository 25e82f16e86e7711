"""Output metadata: only keys JupyterLab uses for layout, per MIME type, size-capped.

Frontends act on metadata (`isolated` puts HTML in an iframe, renderers read options
such as Vega's `embed_options`), so unknown keys are removed, values must have the
expected type, and the whole is at most `limit` characters of JSON.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from .canonical import clean_text


def _size(v: Any) -> Any:
    ok = isinstance(v, int | float) and not isinstance(v, bool) and 0 < v <= 100_000
    return v if ok else None


def _flag(v: Any) -> Any:
    return v if isinstance(v, bool) else None


def _background(v: Any) -> Any:
    return v if v in ("light", "dark") else None


def _short(v: Any) -> Any:
    return clean_text(v, 200) if isinstance(v, str) else None


_Check = Callable[[Any], Any]
_IMAGE: dict[str, _Check] = {"width": _size, "height": _size, "unconfined": _flag, "alt": _short,
          "needs_background": _background}
_PER_MIME: dict[str, dict[str, _Check]] = {
    "image/png": _IMAGE, "image/jpeg": _IMAGE, "image/gif": _IMAGE, "image/webp": _IMAGE,
    "image/svg+xml": {**_IMAGE, "isolated": _flag},
    "text/html": {"isolated": _flag},
    "application/json": {"expanded": _flag, "root": _short},
}
_TOP = {"needs_background": _background, "isolated": _flag, "width": _size,
        "height": _size, "unconfined": _flag}


def clean_metadata(md: Any, mimes: set[str], limit: int) -> tuple[dict[str, Any], int, bool]:
    """(allowed metadata, number of keys removed, whether it was over the size cap)."""
    if not isinstance(md, dict) or not md:
        return {}, 0, False
    out: dict[str, Any] = {}
    removed = 0
    for key, value in md.items():
        if key in _TOP and (v := _TOP[key](value)) is not None:
            out[key] = v
        elif key in _PER_MIME and key in mimes and isinstance(value, dict):
            kept = {k: c for k, fn in _PER_MIME[key].items()
                    if k in value and (c := fn(value[k])) is not None}
            removed += len(value) - len(kept)
            if kept:
                out[key] = kept
        else:
            removed += 1
    if out and len(json.dumps(out)) > limit:
        return {}, removed + len(out), True
    return out, removed, False
