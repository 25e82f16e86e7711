"""The token checks behind css.py, with tinycss2 imported at the top: css.py imports this
module at the first CSS to clean, so a kernel that shows none never loads the parser."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import tinycss2
from tinycss2 import ast

from .css import RESERVED, SVG_PAINT, CssReport

_BOX = ("margin", "padding", "border")
_PROPERTIES = SVG_PAINT | frozenset({
    "color", "background", "background-color", "opacity", "visibility", "display",
    "width", "height", "min-width", "min-height", "max-width", "max-height", "box-sizing",
    "overflow", "overflow-x", "overflow-y", "float", "clear", "vertical-align",
    "position", "top", "left", "right", "bottom", "transform", "transform-origin",
    "font", "font-family", "font-size", "font-style", "font-weight", "font-variant",
    "line-height", "letter-spacing", "word-spacing", "word-break", "word-wrap",
    "overflow-wrap", "white-space", "text-align", "text-decoration", "text-indent",
    "text-transform", "text-overflow", "text-shadow", "box-shadow", "direction",
    "table-layout", "border-collapse", "border-spacing", "caption-side", "empty-cells",
    "list-style", "list-style-type", "list-style-position", "cursor", "outline",
    "border-radius", "border-color", "border-style", "border-width", "gap",
    "flex", "flex-direction", "flex-wrap", "justify-content", "align-items", "align-self",
    "grid-template-columns", "grid-template-rows", "grid-column", "grid-row",
    "content", "tab-size", "column-count", "z-index",
}) | frozenset(f"{box}-{side}" for box in _BOX for side in ("top", "right", "bottom", "left")
               ) | frozenset(_BOX) | frozenset(
    f"border-{side}-{what}" for side in ("top", "right", "bottom", "left")
    for what in ("color", "style", "width")) | frozenset(
    f"border-{a}-{b}-radius" for a in ("top", "bottom") for b in ("left", "right"))
_FUNCTIONS = frozenset({
    "rgb", "rgba", "hsl", "hsla", "hwb", "lab", "lch", "oklab", "oklch", "calc", "min",
    "max", "clamp", "linear-gradient", "radial-gradient", "repeating-linear-gradient",
    "repeating-radial-gradient", "translate", "translatex", "translatey", "scale",
    "scalex", "scaley", "rotate", "skew", "skewx", "skewy", "matrix",
})
_LOCAL_REF = frozenset({"clip-path", "mask", "fill", "stroke", "marker", "marker-start",
                        "marker-mid", "marker-end"})
_FRAGMENT = re.compile(r"#[A-Za-z_][\w.:-]{0,200}")
_SELECTOR_FUNCTIONS = frozenset({"not", "is", "where", "nth-child", "nth-of-type",
                                 "nth-last-child", "nth-last-of-type"})


def _value_ok(tokens: Iterable[Any], local_ref: bool) -> bool:
    for tok in tokens:
        if isinstance(tok, ast.URLToken):
            if not (local_ref and _FRAGMENT.fullmatch(tok.value)):
                return False
        elif isinstance(tok, ast.FunctionBlock):
            if tok.lower_name not in _FUNCTIONS or not _value_ok(tok.arguments, False):
                return False
        elif isinstance(tok, ast.AtKeywordToken | ast.CurlyBracketsBlock) or (
                isinstance(tok, ast.ParenthesesBlock | ast.SquareBracketsBlock)
                and not _value_ok(tok.content, False)):
            return False
    return True


def _declaration(decl: ast.Declaration, allowed: frozenset[str], report: CssReport,
                 page_styles: bool) -> str | None:
    name = decl.lower_name
    if name not in allowed:
        report.page += name in _PROPERTIES
        report.other += name not in _PROPERTIES
        return None
    if not _value_ok(decl.value, name in _LOCAL_REF):
        report.fetch += 1
        return None
    words = {t.lower_value for t in decl.value if isinstance(t, ast.IdentToken)}
    if name == "position" and words & {"fixed", "sticky", "absolute"} and not page_styles:
        report.page += 1
        return None
    value = tinycss2.serialize(decl.value).strip()
    return f"{name}: {value}{' !important' if decl.important else ''}"


def declarations(text: str, report: CssReport, svg_only: bool, page_styles: bool) -> str:
    """A `style` attribute's (or a rule's) declarations, only those allowed."""
    allowed = SVG_PAINT if svg_only else _PROPERTIES
    kept = []
    for decl in tinycss2.parse_declaration_list(text, skip_comments=True,
                                                skip_whitespace=True):
        if isinstance(decl, ast.Declaration):
            out = _declaration(decl, allowed, report, page_styles)
            if out is not None:
                kept.append(out)
        else:
            report.other += 1
    return "; ".join(kept)


def value(name: str, text: str, report: CssReport) -> str | None:
    """An SVG presentation attribute (parsed as CSS by browsers), or None to drop it."""
    tokens = tinycss2.parse_component_value_list(text, skip_comments=True)
    if not _value_ok(tokens, name in _LOCAL_REF):
        report.fetch += 1
        return None
    out: str = tinycss2.serialize(tokens).strip()
    return out


def _selector_scoped(prelude: list[Any]) -> bool | None:
    """True if every selector starts at an own id or class, False if one is global,
    None if the selector uses anything not allowed (the rule is dropped)."""
    groups: list[list[Any]] = [[]]
    for tok in prelude:
        if isinstance(tok, ast.LiteralToken) and tok.value == ",":
            groups.append([])
        elif not isinstance(tok, ast.WhitespaceToken | ast.Comment):
            groups[-1].append(tok)
    if not _selector_tokens_ok(prelude):
        return None
    scoped = True
    for group in groups:
        if not group:
            return None
        head = group[0]
        own_id = isinstance(head, ast.HashToken)
        own_class = (isinstance(head, ast.LiteralToken) and head.value == "." and len(group) > 1
                     and isinstance(group[1], ast.IdentToken))
        scoped = scoped and (own_id or own_class)
    return scoped


def _selector_tokens_ok(tokens: Iterable[Any]) -> bool:
    for tok in tokens:
        if isinstance(tok, ast.HashToken | ast.IdentToken):
            if RESERVED.match(tok.value):
                return False
        elif isinstance(tok, ast.FunctionBlock):
            if tok.lower_name not in _SELECTOR_FUNCTIONS or not _selector_tokens_ok(
                    tok.arguments):
                return False
        elif isinstance(tok, ast.SquareBracketsBlock):
            if not _selector_tokens_ok(tok.content):
                return False
        elif not isinstance(tok, ast.LiteralToken | ast.WhitespaceToken | ast.StringToken |
                            ast.NumberToken | ast.DimensionToken | ast.Comment):
            return False
    return True


def stylesheet(text: str, report: CssReport, page_styles: bool) -> str:
    """A `<style>` element's content: plain rules and @media, each rule cleaned."""
    return "\n".join(_rules(tinycss2.parse_stylesheet(
        text, skip_comments=True, skip_whitespace=True), report, page_styles, 0))


def _rules(rules: Iterable[Any], report: CssReport, page_styles: bool, depth: int,
           ) -> list[str]:
    out = []
    for rule in rules:
        if isinstance(rule, ast.QualifiedRule):
            scoped = True if page_styles else _selector_scoped(rule.prelude)
            if scoped is None:
                report.page += 1
                continue
            body = declarations(tinycss2.serialize(rule.content), report,
                                      not (scoped or page_styles), page_styles)
            out.append(f"{tinycss2.serialize(rule.prelude).strip()} {{{body}}}")
        elif (isinstance(rule, ast.AtRule) and rule.lower_at_keyword == "media" and
              rule.content is not None and depth < 4 and _value_ok(rule.prelude, False)):
            inner = _rules(tinycss2.parse_rule_list(rule.content, skip_comments=True,
                                                    skip_whitespace=True),
                           report, page_styles, depth + 1)
            out.append(f"@media {tinycss2.serialize(rule.prelude).strip()} {{"
                       + "\n".join(inner) + "}")
        elif isinstance(rule, ast.AtRule):
            report.fetch += 1  # @import, @font-face (src), @namespace ...
        else:
            report.other += 1
    return out
