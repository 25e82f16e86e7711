"""The strict grammar of `%sandbox` commands: argparse that raises instead of exiting, and
the tables their results are shown as (text/plain plus escaped text/html).
"""

from __future__ import annotations

import argparse
import html
from collections.abc import Sequence
from typing import Any, NoReturn

from ..errors import UsageError


class MagicExit(Exception):
    """argparse wanted to print help (or an error) and exit."""

    def __init__(self, text: str, error: bool) -> None:
        super().__init__(text)
        self.text = text
        self.error = error


class MagicParser(argparse.ArgumentParser):
    """argparse that raises instead of printing and exiting."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message} (see {self.prog} --help)")

    def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
        raise MagicExit(message or "", status != 0)

    def print_help(self, file: Any = None) -> None:
        raise MagicExit(self.format_help(), False)


def magic_parser(prog: str, description: str) -> MagicParser:
    return MagicParser(prog=prog, description=description, add_help=True, allow_abbrev=False,
                   exit_on_error=True)  # ArgumentError -> error() -> UsageError


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> dict[str, str]:
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))
    text = [line, *("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True))
                    for r in rows)]
    cells = "".join(f"<th style='text-align:left'>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td style='text-align:left'>{html.escape(c)}</td>"
                                    for c in r) + "</tr>" for r in rows)
    return {"text/plain": "\n".join(text),
            "text/html": f"<table><thead><tr>{cells}</tr></thead><tbody>{body}</tbody></table>"}


def kv(pairs: Sequence[tuple[str, str]]) -> dict[str, str]:
    return table(("", ""), pairs) | {"text/plain": "\n".join(
        f"{k + ':':<16} {v}" for k, v in pairs)}
