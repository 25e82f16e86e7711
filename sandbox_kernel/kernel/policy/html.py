"""HTML and SVG from the sandbox, sanitized by nh3 (ammonia) with a strict filter.

Tags and attributes are allow-listed (no script, no event handlers, no iframes or forms);
nothing loads without a click: images only as embedded `data:` rasters, SVG references
only to `#ids` in the same document, CSS through css.py; links go to http(s) only and
open in a new tab with `noopener noreferrer`. Class and id names of JupyterLab itself
(`jp-`, `lm-`...) are removed, so an output cannot dress up as the page around it.
nh3 is imported at the first HTML output: a kernel that shows none never loads it.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field

from . import css, tex

_SVG_TAGS = frozenset({
    "svg", "g", "path", "rect", "circle", "ellipse", "line", "polyline", "polygon", "text",
    "tspan", "defs", "clipPath", "linearGradient", "radialGradient", "stop", "pattern",
    "mask", "symbol", "marker", "title", "desc", "use", "style", "switch", "textPath",
    "image",
})
_GENERIC = frozenset({
    "class", "id", "style", "title", "lang", "dir", "align", "width", "height", "colspan",
    "rowspan", "scope", "border", "cellpadding", "cellspacing", "valign", "bgcolor",
    "color", "face", "size", "role", "aria-label", "aria-hidden", "start", "span",
    "summary", "headers", "abbr", "alt", "open", "datetime", "value",
})
_SVG_ATTRS = frozenset({
    "viewBox", "preserveAspectRatio", "xmlns", "version", "x", "y", "x1", "x2", "y1", "y2",
    "cx", "cy", "r", "rx", "ry", "d", "points", "transform", "offset", "dx", "dy",
    "rotate", "textLength", "lengthAdjust", "startOffset", "method", "spacing", "fx", "fy",
    "clipPathUnits", "gradientUnits", "gradientTransform", "spreadMethod", "markerWidth",
    "markerHeight", "markerUnits", "refX", "refY", "orient", "patternUnits",
    "patternContentUnits", "patternTransform", "maskUnits", "maskContentUnits",
    "font-family", "font-size", "font-weight", "font-style", "letter-spacing", "visibility",
    "display", "opacity", "href",
}) | css.SVG_PAINT
_ACTIVE = re.compile(r"(?i)<\s*(?:script|iframe|frame|object|embed|applet|link|meta|base|"
                     r"form|input|button|select|textarea|animate|set|foreignobject|feimage)\b"
                     r"|\son[a-z]+\s*=|javascript:")
_FETCH_ATTR = re.compile(r"(?i)\s(?:background|poster|lowsrc|dynsrc|ping|formaction|action|"
                         r"longdesc|codebase|archive|classid|manifest|icon|data)\s*=")
_STYLE = re.compile(r"(<style\b[^>]*>)(.*?)(</style>)", re.S)
_SVG_ROOT = re.compile(r"<svg\b[^>]*>")
_RASTER = re.compile(r"data:image/(?:png|jpeg|gif|webp);base64,[A-Za-z0-9+/=\s]*")
_REMOTE = re.compile(r"https?://\S+", re.I)
_FRAGMENT = re.compile(r"#[A-Za-z_][\w.:-]{0,200}")


@functools.cache
def _tags() -> frozenset[str]:
    """nh3's own allow-list less image maps, plus styles and a few layout tags, and SVG."""
    import nh3

    return (frozenset(nh3.ALLOWED_TAGS) - {"wbr", "area", "map"}) | {
        "style", "tfoot", "font", "section", "main"} | _SVG_TAGS


@dataclass
class Findings:
    """What one clean removed (for the notice line)."""

    css: css.CssReport = field(default_factory=css.CssReport)
    remote_images: int = 0
    links: int = 0
    active: int = 0
    tex: int = 0


@dataclass(frozen=True)
class HtmlCleaner:
    """One configuration of the sanitizer (the flags come from the output policy)."""

    remote_images: bool = False
    page_styles: bool = False
    tex_macros: bool = False

    def clean(self, text: str, svg: bool = False) -> tuple[str, Findings]:
        found = Findings(active=len(_ACTIVE.findall(text)))
        found.css.fetch += len(_FETCH_ATTR.findall(text))
        attrs = {"*": set(_GENERIC | _SVG_ATTRS), "a": {"href", "target"},
                 "img": {"src", "srcset"}, "style": {"type", "media", "scoped"}}
        import nh3

        cleaned = nh3.clean(
            text, tags=set(_tags()),
            clean_content_tags={"script", "iframe", "object", "embed", "metadata", "template",
                                "noscript", "textarea", "select", "foreignObject"},
            attributes=attrs, attribute_filter=lambda t, a, v: self._attribute(t, a, v, found),
            strip_comments=True, url_schemes={"http", "https", "data"},
            link_rel="noopener noreferrer")
        cleaned = _STYLE.sub(lambda m: m.group(1) + css.clean_stylesheet(
            m.group(2), found.css, self.page_styles) + m.group(3), cleaned)
        if not self.tex_macros:
            cleaned, found.tex = tex.neutralise(cleaned)
        return (_as_svg_document(cleaned) if svg else cleaned), found

    def _attribute(self, tag: str, attr: str, value: str, found: Findings) -> str | None:
        v = value.strip()
        if attr in ("src", "srcset") or (attr == "href" and tag == "image"):
            return self._image(attr, v, found)
        if attr == "href":
            return self._href(tag, v, found)
        if attr == "style":
            return css.clean_declarations(v, found.css, page_styles=self.page_styles)
        if attr in css.SVG_PAINT:
            return css.clean_value(attr, v, found.css)
        if attr == "class":
            kept = [c for c in v.split() if not css.RESERVED.match(c)]
            return " ".join(kept) or None
        if attr == "id":
            return None if css.RESERVED.match(v) else v
        if attr == "target":
            return "_blank"
        return value

    @staticmethod
    def _href(tag: str, v: str, found: Findings) -> str | None:
        """Links need a click and go to http(s); other references stay inside the output."""
        if tag == "a":
            if v.lower().startswith(("http://", "https://")):
                return v
            found.links += 1
            return None
        if _FRAGMENT.fullmatch(v):
            return v
        found.css.fetch += 1
        return None

    def _image(self, attr: str, v: str, found: Findings) -> str | None:
        if attr != "srcset" and _RASTER.fullmatch(v):
            return v
        if self.remote_images and all(_REMOTE.match(part.strip()) for part in v.split(",")):
            return v
        found.remote_images += 1
        return None


def _as_svg_document(text: str) -> str:
    """Serialized HTML made a standalone SVG document again: the namespaces ammonia drops,
    and no HTML-only entities (an image/svg+xml output is parsed as XML)."""
    def root(m: re.Match[str]) -> str:
        tag = m.group(0)
        if 'xmlns="' not in tag:
            tag = tag[:4] + ' xmlns="http://www.w3.org/2000/svg"' + tag[4:]
        if "xmlns:xlink" not in tag:
            tag = tag[:4] + ' xmlns:xlink="http://www.w3.org/1999/xlink"' + tag[4:]
        return tag

    return _SVG_ROOT.sub(root, text.strip(), count=1).replace("&nbsp;", "&#160;")
