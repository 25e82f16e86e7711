"""The cell grammar, parsed on the host before anything reaches the sandbox (pure code).

A cell is either code for an interpreter in the sandbox (Python by default; `%%python`,
`%%node`, `%%bash`/`%%sh` choose explicitly) or a host command: `%sandbox ...` lines, or a
`%%sandbox ...` cell. Host commands run in the kernel process, so they are parsed
strictly and never reach a shell.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from ..errors import UsageError

LANG_MAGICS = {"python": "python", "python3": "python", "node": "node", "bash": "bash",
               "sh": "bash"}
HOST_MAGIC = "sandbox"


@dataclass(frozen=True)
class Code:
    """Code to run in the sandbox in one language."""

    lang: str
    body: str


@dataclass(frozen=True)
class HostCommand:
    """One `%sandbox` command: its argument words, and the cell body for `%%sandbox`."""

    argv: tuple[str, ...]
    body: str | None = None
    line: str = ""


Cell = Code | tuple[HostCommand, ...]


def _split(text: str, line: str) -> tuple[str, ...]:
    try:
        return tuple(shlex.split(text, comments=False, posix=True))
    except ValueError as exc:
        raise UsageError(f"cannot parse {line.strip()[:80]!r}: {exc}") from None


def parse_cell(code: str, default: str = "python") -> Cell:
    """Split a cell into interpreter code, or a tuple of host commands."""
    stripped = code.lstrip()
    if stripped.startswith("%%"):
        first, _, body = stripped.partition("\n")
        name, _, args = first[2:].partition(" ")
        name = name.strip()
        if name == HOST_MAGIC:
            return (HostCommand(_split(args, first), body, first),)
        lang = LANG_MAGICS.get(name)
        if lang == "bash" and args.strip() and default == "python":
            return Code("python", code)  # IPython's own %%bash: --out, --err, --bg, --proc
        if lang is not None:
            if args.strip():
                raise UsageError(f"%%{name} takes no arguments (got {args.strip()[:40]!r})")
            return Code(lang, body)
        return Code(default, code)
    lines = code.splitlines()
    host = [ln for ln in lines if ln.strip().startswith(f"%{HOST_MAGIC}")
            and (ln.strip() == f"%{HOST_MAGIC}" or ln.strip()[len(HOST_MAGIC) + 1].isspace())]
    if not host:
        return Code(default, code)
    others = [ln for ln in lines if ln not in host and ln.strip() and
              not ln.strip().startswith("#")]
    if others:
        raise UsageError("%sandbox commands run on the host; put them in a cell of their own, "
                         "without other code")
    return tuple(HostCommand(_split(ln.strip()[len(HOST_MAGIC) + 1:], ln), None, ln)
                 for ln in host)
