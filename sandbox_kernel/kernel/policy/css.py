"""CSS from the sandbox, cleaned by a parser (tinycss2), never by a regex.

The tokenizer resolves escapes first (`\\75 rl(` and `u\\rl(` are the function `url`,
`@\\69mport` is `@import`), so what is checked is what the browser will see; the cleaned
CSS is serialized again from the checked tokens. Kept: an allow-list of properties whose
values use no function outside a short list, no `url()` (except `url(#id)`, a reference
inside the same document, where SVG needs it), no `position: fixed/sticky/absolute`.
Style sheets keep plain rules and `@media`; a rule whose selector does not start at an id
or class of the output's own (not JupyterLab's `jp-`...) may only set SVG paint properties.
The checks and their allow-lists live in css_tokens.py, imported at the first CSS to clean:
a kernel that shows none never loads tinycss2.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

SVG_PAINT = frozenset({
    "fill", "fill-opacity", "fill-rule", "stroke", "stroke-width", "stroke-opacity",
    "stroke-linecap", "stroke-linejoin", "stroke-dasharray", "stroke-dashoffset",
    "stroke-miterlimit", "clip-path", "clip-rule", "mask", "marker", "marker-start",
    "marker-mid", "marker-end", "stop-color", "stop-opacity", "text-anchor",
    "dominant-baseline", "alignment-baseline", "paint-order", "shape-rendering",
    "vector-effect", "color-interpolation", "flood-color", "flood-opacity", "lighting-color",
})
#: Class and id prefixes of JupyterLab, Lumino, CodeMirror and MathJax: not for outputs.
RESERVED = re.compile(r"(?i)(jp-|lm-|p-|cm-|mjx|mathjax|jupyter)")


@dataclass
class CssReport:
    """What cleaning removed, by kind (for the output's notice)."""

    fetch: int = 0  # url(), @import, @font-face: the browser would fetch
    page: int = 0  # styles that reach outside the output (global rules, position: fixed)
    other: int = 0  # properties or rules outside the allow-list


def clean_declarations(text: str, report: CssReport, svg_only: bool = False,
                       page_styles: bool = False) -> str:
    """A `style` attribute's (or a rule's) declarations, only those allowed."""
    from . import css_tokens

    return _xml_safe(css_tokens.declarations(text, report, svg_only, page_styles))


def clean_value(name: str, text: str, report: CssReport) -> str | None:
    """An SVG presentation attribute (parsed as CSS by browsers), or None to drop it."""
    from . import css_tokens

    value = css_tokens.value(name, text, report)
    return None if value is None else _xml_safe(value)


def clean_stylesheet(text: str, report: CssReport, page_styles: bool = False) -> str:
    """A `<style>` element's content: plain rules and @media, each rule cleaned."""
    from . import css_tokens

    return _xml_safe(css_tokens.stylesheet(text, report, page_styles))


def _xml_safe(css: str) -> str:
    """`<` and `&` as CSS escapes: valid in an HTML `<style>` and in SVG's XML alike."""
    return css.replace("<", "\\3c ").replace("&", "\\26 ")
