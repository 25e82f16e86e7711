"""The untrusted-output policy: what a sandbox may show in the user's browser.

JupyterLab runs what a live kernel sends. Script in the user's browser can drive the
Jupyter server on the host, and a remote image or stylesheet URL would give a sandbox
without network a way to send data out through the browser. So by default JavaScript
outputs are dropped, HTML and SVG are sanitized by nh3 (ammonia), and resources may only
be embedded (`data:` images), never fetched. Tables, styled HTML and images still render.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import nh3

_JS_MIME = re.compile(r"(java|ecma)script", re.I)
_DROPPED_MIMES = frozenset({"application/vnd.jupyter.widget-view+json"})
_HTML_TAGS = frozenset(nh3.ALLOWED_TAGS) | {"style", "tfoot", "font", "section", "main"}
_SVG_TAGS = frozenset({
    "svg", "g", "path", "rect", "circle", "ellipse", "line", "polyline", "polygon", "text",
    "tspan", "defs", "clippath", "lineargradient", "radialgradient", "stop", "pattern", "mask",
    "symbol", "marker", "title", "desc", "use", "style", "metadata", "switch", "textpath",
})
_GENERIC_ATTRS = {"class", "id", "style", "title", "lang", "dir", "align", "width", "height",
                  "colspan", "rowspan", "scope", "border", "cellpadding", "cellspacing",
                  "valign", "bgcolor", "color", "face", "size", "role", "aria-label"}
_SVG_ATTRS = {
    "viewbox", "xmlns", "version", "x", "y", "x1", "x2", "y1", "y2", "cx", "cy", "r", "rx",
    "ry", "d", "points", "fill", "fill-opacity", "fill-rule", "stroke", "stroke-width",
    "stroke-opacity", "stroke-linecap", "stroke-linejoin", "stroke-dasharray",
    "stroke-dashoffset", "stroke-miterlimit", "opacity", "transform", "font-family",
    "font-size", "font-weight", "font-style", "text-anchor", "dominant-baseline",
    "clip-path", "clippathunits", "gradientunits", "gradienttransform", "offset",
    "stop-color", "stop-opacity", "preserveaspectratio", "marker-start", "marker-end",
    "marker-mid", "markerwidth", "markerheight", "refx", "refy", "orient", "patternunits",
    "mask", "dx", "dy", "rotate", "letter-spacing", "visibility", "display", "href",
    "xlink:href", "xmlns:xlink",
}
_CSS_FETCH = re.compile(r"@import|url\s*\(|image-set\s*\(|expression\s*\(", re.I)
_STYLE_BLOCK = re.compile(r"(<style[^>]*>)(.*?)(</style>)", re.I | re.S)


def _attribute_filter(tag: str, attr: str, value: str) -> str | None:
    """Keep embedded data only: no remote `src`, no script URLs, no fetching CSS."""
    v = value.strip()
    low = v.lower()
    if attr in ("src", "srcset", "poster", "background"):
        return v if low.startswith("data:image/") and "svg" not in low[:20] else None
    if attr in ("href", "xlink:href"):
        if tag in ("use", "textpath") or attr == "xlink:href":
            return v if v.startswith("#") else None
        return v if low.startswith(("http://", "https://", "mailto:", "#")) else None
    if attr == "style":
        return _CSS_FETCH.sub("blocked(", v)
    return v


def _clean_css_blocks(html: str) -> str:
    return _STYLE_BLOCK.sub(lambda m: m.group(1) + _CSS_FETCH.sub("blocked(", m.group(2))
                            + m.group(3), html)


@dataclass(frozen=True)
class OutputPolicy:
    """How much of the sandbox's rich output reaches the browser."""

    sanitize: bool = True
    allow_javascript: bool = False

    def clean_html(self, html: str, svg: bool = False) -> str:
        tags = (_HTML_TAGS | _SVG_TAGS) if svg else _HTML_TAGS
        attrs: dict[str, set[str]] = {"*": set(_GENERIC_ATTRS) | (_SVG_ATTRS if svg else set()),
                                      "a": {"href", "target"}, "img": {"src", "alt"}}
        cleaned = nh3.clean(
            html, tags=set(tags), clean_content_tags={"script", "iframe", "object", "embed"},
            attributes=attrs, attribute_filter=_attribute_filter, strip_comments=True,
            url_schemes={"http", "https", "mailto", "data"}, link_rel="noopener noreferrer",
        )
        return _clean_css_blocks(cleaned)

    def bundle(self, data: Any) -> dict[str, Any]:
        """A mime bundle safe to publish; non-dict input becomes an empty bundle."""
        if not isinstance(data, dict):
            return {}
        out: dict[str, Any] = {}
        for mime, raw in data.items():
            value = raw
            if not isinstance(mime, str) or len(mime) > 200:
                continue
            if _JS_MIME.search(mime) and not self.allow_javascript:
                continue
            if mime in _DROPPED_MIMES:
                continue
            if self.sanitize and isinstance(value, str):
                if mime == "text/html":
                    value = self.clean_html(value)
                elif mime == "image/svg+xml":
                    value = self.clean_html(value, svg=True)
                elif mime == "text/markdown" and "<" in value:
                    value = self.clean_html(value)
            elif self.sanitize and mime in ("text/html", "image/svg+xml"):
                continue
            out[mime] = value
        if not out and isinstance(data, dict) and data:
            out["text/plain"] = "[output removed: it contained only active content]"
        return out

    @staticmethod
    def metadata(md: Any) -> dict[str, Any]:
        return md if isinstance(md, dict) else {}
