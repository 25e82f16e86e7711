"""OutputPolicy: every MIME bundle from the sandbox, canonicalised, then cleaned per type.

An allow-list: each known MIME type has its own cleaner, anything else is removed. What
was removed comes back as notes, and `notice_line` turns them into the one visible line
shown with the output, naming the setting that relaxes each class. README's security
section has the table of what each type keeps and loses.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from . import markdown, viz
from .canonical import MAX_TEXT, as_json, as_text, is_json_mime, valid_mime
from .html import Findings, HtmlCleaner
from .metadata import clean_metadata
from .tex import neutralise

_JS = re.compile(r"(?:java|ecma)script", re.I)
_VEGA = frozenset({f"application/vnd.vega.v{v}+json" for v in (4, 5, 6)} |
                  {f"application/vnd.vegalite.v{v}+json" for v in (3, 4, 5, 6)})
_IMAGES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})
SANITIZE_OFF = "c.Sandbox.sanitize_output = False"


@dataclass(frozen=True)
class Note:
    """One class of content removed from an output, and the setting that would keep it."""

    what: str
    relax: str | None = None
    count: int = 1


@dataclass(frozen=True)
class CleanOutput:
    """A bundle safe to publish: data, metadata, what was removed, and its size in chars."""

    data: dict[str, Any]
    metadata: dict[str, Any]
    notes: tuple[Note, ...] = ()
    size: int = 0


def notice_line(notes: tuple[Note, ...] | list[Note]) -> str:
    """The one line a user sees about an output's removed content (no trailing newline)."""
    parts = []
    for n in notes:
        what = f"{n.count} x {n.what}" if n.count > 1 else n.what
        how = f"to keep: {n.relax}" if n.relax else "not configurable"
        parts.append(f"{what} ({how})")
    return "[sandbox] removed from this output: " + "; ".join(parts)


def _findings_notes(found: Findings) -> list[Note]:
    c = found.css
    pairs = [
        (found.active, "scripts, event handlers or active elements", SANITIZE_OFF),
        (found.remote_images, "images that are not embedded",
         "c.Sandbox.allow_remote_images = True"),
        (c.fetch, "CSS or references that would fetch", SANITIZE_OFF),
        (c.page, "styles that reach outside the output",
         "c.Sandbox.allow_page_styles = True"),
        (c.other, "CSS outside the allow-list", SANITIZE_OFF),
        (found.links, "links that are not http(s)", SANITIZE_OFF),
        (found.tex, "TeX macros that link, load or style", "c.Sandbox.allow_tex_macros = True"),
    ]
    return [Note(what, relax, n) for n, what, relax in pairs if n]


@dataclass(frozen=True)
class OutputPolicy:
    """How much of the sandbox's rich output reaches the browser (frozen settings)."""

    sanitize: bool = True
    allow_javascript: bool = False
    allow_remote_images: bool = False
    allow_page_styles: bool = False
    allow_tex_macros: bool = False
    allow_viz_fetch: bool = False
    extra_mime_types: frozenset[str] = frozenset()
    metadata_limit: int = 4096
    text_limit: int = MAX_TEXT
    _html: HtmlCleaner = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_html", HtmlCleaner(
            self.allow_remote_images, self.allow_page_styles, self.allow_tex_macros))

    def clean(self, data: Any, metadata: Any = None) -> CleanOutput:
        """The publishable form of one output's (data, metadata)."""
        if not isinstance(data, dict):
            return CleanOutput({}, {}, (Note("an output that is not a MIME bundle"),))
        out: dict[str, Any] = {}
        notes: list[Note] = []
        for mime, raw in data.items():
            value = self._canonical(mime, raw, notes)
            if value is not None:
                self._one(mime, value, out, notes)
        if "text/markdown" in out:
            self._markdown(out, notes)
        md, removed, over = self._metadata(metadata, set(out))
        if over:
            notes.append(Note(f"metadata over {self.metadata_limit:,} characters",
                              "c.Sandbox.output_metadata_limit"))
        elif removed:
            notes.append(Note("metadata keys outside the allow-list", SANITIZE_OFF, removed))
        return CleanOutput(out, md, _merge(notes), _size(out) + (len(json.dumps(md)) if md
                                                                  else 0))

    def _canonical(self, mime: Any, raw: Any, notes: list[Note]) -> Any:
        if not valid_mime(mime):
            notes.append(Note("a malformed MIME type"))
            return None
        if is_json_mime(mime):
            copied = as_json(raw, self.text_limit)
            value = None if copied is None else copied[0]
        else:
            value = as_text(raw, self.text_limit)
        if value is None:
            shape = "JSON object or array" if is_json_mime(mime) else "string or list of strings"
            notes.append(Note(f"{mime} that is not a {shape}"))
        return value

    def _one(self, mime: str, value: Any, out: dict[str, Any], notes: list[Note]) -> None:
        if _JS.search(mime):
            if self.allow_javascript:
                out[mime] = value
            else:
                notes.append(Note(mime, "c.Sandbox.allow_javascript = True"))
            return
        if not self.sanitize or mime in self.extra_mime_types:
            out[mime] = value
            return
        cleaner = _CLEANERS.get(mime)
        if cleaner is None:
            notes.append(Note(mime, "c.Sandbox.extra_mime_types"))
            return
        kept = cleaner(self, mime, value, notes)
        if kept is not None:
            out[mime] = kept

    def _markdown(self, out: dict[str, Any], notes: list[Note]) -> None:
        """text/markdown becomes sanitized text/html (unless the bundle has its own)."""
        source = out.pop("text/markdown")
        if not self.sanitize:
            out["text/markdown"] = source
            return
        if "text/html" not in out:
            html, found = self._html.clean(markdown.render(source))
            notes.extend(_findings_notes(found))
            out["text/html"] = html
        out.setdefault("text/plain", source)

    def _metadata(self, md: Any, mimes: set[str]) -> tuple[dict[str, Any], int, bool]:
        if not self.sanitize:
            copied = as_json(md, self.metadata_limit) if isinstance(md, dict) else None
            return (copied[0] if copied else {}), 0, copied is None and bool(md)
        return clean_metadata(md, mimes, self.metadata_limit)

    # ----- cleaners, one per MIME type ----------------------------------------------------
    def _text(self, mime: str, value: str, notes: list[Note]) -> str | None:
        return value

    def _markup(self, mime: str, value: str, notes: list[Note]) -> str | None:
        cleaned, found = self._html.clean(value, svg=mime == "image/svg+xml")
        notes.extend(_findings_notes(found))
        return cleaned

    def _latex(self, mime: str, value: str, notes: list[Note]) -> str | None:
        if self.allow_tex_macros:
            return value
        cleaned, n = neutralise(value)
        if n:
            notes.append(Note("TeX macros that link, load or style",
                              "c.Sandbox.allow_tex_macros = True", n))
        return cleaned

    def _image(self, mime: str, value: str, notes: list[Note]) -> str | None:
        kept = viz.image_ok(mime, value)
        if kept is None:
            notes.append(Note(f"{mime} that is not valid base64 of that format"))
        return kept

    def _spec(self, mime: str, value: Any, notes: list[Note]) -> Any:
        ok = {"text/vnd.mermaid": viz.mermaid_ok, "application/vnd.plotly.v1+json":
              viz.plotly_ok}.get(mime, viz.vega_ok)
        if self.allow_viz_fetch or ok(value):
            return value
        notes.append(Note(f"{mime} that could load resources (its fallback is shown)",
                          "c.Sandbox.allow_viz_fetch = True"))
        return None

    def _json(self, mime: str, value: Any, notes: list[Note]) -> Any:
        return value


_Cleaner = Callable[[OutputPolicy, str, Any, list[Note]], Any]
_CLEANERS: dict[str, _Cleaner] = {
    "text/plain": OutputPolicy._text,
    "text/markdown": OutputPolicy._text,  # rendered by OutputPolicy._markdown afterwards
    "text/html": OutputPolicy._markup,
    "image/svg+xml": OutputPolicy._markup,
    "text/latex": OutputPolicy._latex,
    "application/json": OutputPolicy._json,
    "application/vnd.plotly.v1+json": OutputPolicy._spec,
    "text/vnd.mermaid": OutputPolicy._spec,
    **{mime: OutputPolicy._image for mime in _IMAGES},
    **{mime: OutputPolicy._spec for mime in _VEGA},
}


def _merge(notes: list[Note]) -> tuple[Note, ...]:
    merged: dict[tuple[str, str | None], int] = {}
    for n in notes:
        merged[(n.what, n.relax)] = merged.get((n.what, n.relax), 0) + n.count
    return tuple(Note(what, relax, count) for (what, relax), count in merged.items())


def _size(data: dict[str, Any]) -> int:
    return sum(len(v) if isinstance(v, str) else len(json.dumps(v)) for v in data.values())
