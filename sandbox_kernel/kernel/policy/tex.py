"""TeX for MathJax: the macros that link, load code or set CSS are neutralised.

JupyterLab typesets `text/latex` and the math inside HTML and Markdown outputs with
MathJax, whose `\\href`, `\\style`, `\\class`, `\\require` (and `\\def`-style macros that
could assemble them) would add links, CSS or fetched code. A zero-width space after the
backslash turns each into an undefined control sequence, which MathJax shows in red:
the rest of the formula still renders.
"""

from __future__ import annotations

import re

_UNSAFE = re.compile(
    r"\\(?=(?:href|url|style|class|cssId|require|html\w*|data|unicode|mmlToken|def|gdef|edef|"
    r"xdef|newcommand|renewcommand|providecommand|newenvironment|renewenvironment|"
    r"DeclareMathOperator|let|futurelet|csname|includegraphics|input|include|special|"
    r"texttip|mathtip|toggle|setOptions|Newextarrow|string|expandafter)"
    r"(?![A-Za-z]))")
_CARET = re.compile(r"\^\^")


def neutralise(text: str) -> tuple[str, int]:
    """The text with unsafe macros (and TeX's ^^ character codes) disarmed, and how many."""
    if "\\" not in text and "^^" not in text:
        return text, 0
    text, n = _UNSAFE.subn("\\\\\u200b", text)
    text, m = _CARET.subn("^\u200b^", text)
    return text, n + m
