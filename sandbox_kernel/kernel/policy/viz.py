"""Visualisation specs that JupyterLab renders natively: kept only if they fetch nothing.

Vega and Vega-Lite load `data.url`, image marks and (through `usermeta`) embed options;
Plotly loads map tiles, topojson and layout images; Mermaid labels may hold HTML and its
directives change the renderer's security level. The checks are deliberately strict: a
spec with anything URL-like is dropped, and the bundle's PNG or text fallback is shown.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

_URLISH = re.compile(r"(?i)://|^\s*//|url\s*\(|image-set|@import|\\|javascript:|data:")
_VEGA_SCHEMA = re.compile(r"https://vega\.github\.io/schema/vega(?:-lite)?/v[\d.]+\.json")
_VEGA_KEYS = frozenset({"url", "href", "loader", "usermeta", "embedoptions", "$ref", "baseurl",
                        "src", "image"})
_PLOTLY_KEYS = frozenset({"images", "geo", "mapbox", "map", "topojsonurl", "topojson",
                          "mapboxaccesstoken", "source", "href", "url", "plotlyserverurl",
                          "baseurl", "loader"})
_PLOTLY_TRACE = re.compile(r"(?i)geo|map|choropleth|image")
_MERMAID = re.compile(r"(?i)[<&\\`]|://|url|image|@|%%\{|\bclick\b|\bhref\b|\bcall\b|#\w+;"
                      r"|cross-fade|element\(|\bsrc\b|fa:|^\s*---|config|init|securitylevel|"
                      r"themecss|!\[")
_MAGIC = {"image/png": (b"\x89PNG\r\n\x1a\n",), "image/jpeg": (b"\xff\xd8\xff",),
          "image/gif": (b"GIF87a", b"GIF89a"), "image/webp": (b"RIFF",)}
_B64 = re.compile(r"[A-Za-z0-9+/]*={0,2}")


def _walk_ok(value: Any, bad_keys: frozenset[str], top: bool = False) -> bool:
    """No forbidden key, no image mark, and no URL-like string anywhere in the spec."""
    if isinstance(value, dict):
        for key, v in value.items():
            low = key.lower()
            if low in bad_keys:
                return False
            if top and key == "$schema" and isinstance(v, str) and _VEGA_SCHEMA.fullmatch(v):
                continue
            if low in ("mark", "type") and isinstance(v, str) and v.lower() == "image":
                return False
            if not _walk_ok(v, bad_keys):
                return False
        return True
    if isinstance(value, list):
        return all(_walk_ok(v, bad_keys) for v in value)
    if isinstance(value, str):
        return not _URLISH.search(value)
    return True


def vega_ok(spec: Any) -> bool:
    """A Vega or Vega-Lite spec that loads no data, image or option from anywhere."""
    return isinstance(spec, dict) and _walk_ok(spec, _VEGA_KEYS, top=True)


def plotly_ok(fig: Any) -> bool:
    """A Plotly figure without maps, geo traces, layout images or anything URL-like."""
    if not isinstance(fig, dict) or not _walk_ok(fig, _PLOTLY_KEYS):
        return False
    traces = fig.get("data")
    if not isinstance(traces, list):
        return traces is None
    return all(isinstance(t, dict) and not _PLOTLY_TRACE.search(str(t.get("type", "")))
               for t in traces)


def mermaid_ok(text: str) -> bool:
    """A Mermaid diagram of plain labels and styles: no HTML, links, clicks, directives."""
    return not _MERMAID.search(text)


def image_ok(mime: str, data: str) -> str | None:
    """Base64 of a real PNG/JPEG/GIF/WebP (whitespace removed), or None."""
    compact = "".join(data.split())
    if not _B64.fullmatch(compact):
        return None
    try:
        head = base64.b64decode(compact[:64] + "=" * (-len(compact[:64]) % 4))
    except (binascii.Error, ValueError):
        return None
    magic = _MAGIC.get(mime, ())
    if not any(head.startswith(m) for m in magic):
        return None
    if mime == "image/webp" and head[8:12] != b"WEBP":
        return None
    return compact
