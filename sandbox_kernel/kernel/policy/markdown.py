"""Markdown rendered to HTML on the host (markdown-it-py), so the browser never parses
markdown from the sandbox: its image syntax, autolinks and raw HTML all become HTML that
html.py then sanitizes like any other.

Math (`$...$`, `$$...$$`, `\\(...\\)`, `\\[...\\]`) is set aside before rendering and put
back as escaped text, so markdown cannot mangle it and JupyterLab's MathJax still
typesets it (tex.py has disarmed what it must not do).
"""

from __future__ import annotations

import html
import re
import secrets

_MATH = re.compile(r"\$\$.+?\$\$|\\\[.+?\\\]|\\\(.+?\\\)"
                   r"|(?<![\\$])\$(?![\s$])[^$\n]+?(?<![\s\\])\$", re.S)


def render(source: str) -> str:
    """CommonMark with tables and strikethrough, raw HTML kept for the sanitizer."""
    from markdown_it import MarkdownIt  # imported by the first markdown output, not at start

    md = MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"])
    token = secrets.token_hex(6)
    saved: list[str] = []

    def park(m: re.Match[str]) -> str:
        saved.append(m.group(0))
        return f"MATH{token}N{len(saved) - 1}X"

    rendered = md.render(_MATH.sub(park, source))
    marker = re.compile(rf"MATH{token}N(\d+)X")
    return marker.sub(lambda m: html.escape(saved[int(m.group(1))], quote=False), rendered)
