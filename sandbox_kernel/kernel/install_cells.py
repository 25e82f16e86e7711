"""Install lines inside cells: `%pip install`, `!pip install`, `npm install` (pure code).

They run on the host, between the parts of the cell around them, so they must stand at the
top level of the cell (docs/architecture.md, "Packages"):

- Python cells: `%pip install ...`, `!pip install ...` (also `!pip3`, `!python -m pip`,
  `!{sys.executable} -m pip`) and `!npm install ...`, at column 0 of a new statement; one
  inside a block (if, try, def) is refused, one inside a string is just text.
- Node cells: `npm install ...` (or `%npm`, `!npm`; `i` and `add` too) at column 0.
- Shell cells (%%bash): when every command of the cell is one of the installs above.

Shell decorations people add are understood: `> /dev/null` and `-q` make an install quiet,
`2>&1` is dropped, and anything else after the install (`| tail -1`, `&& ...`) is not run,
which the install says.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass

from ..errors import UsageError
from .cells import Code

_PY = re.compile(r"^(?:%pip|!\s*(?:pip3?|python3?\s+-m\s+pip|\{sys\.executable\}\s+-m\s+pip))"
                 r"\s+install(?=\s|$)(.*)$")
_NPM = re.compile(r"^[%!]?\s*npm\s+(?:install|i|add)(?=\s|$)(.*)$")
_SH_PY = re.compile(r"^(?:pip3?|python3?\s+-m\s+pip)\s+install(?=\s|$)(.*)$")
#: Redirections of the install's output: to stdout's target they make it quiet; of stderr
#: (2>&1, 2>/dev/null) they change nothing here.
_REDIRECTS = (">", ">>", "&>", ">&", "&>>")


@dataclass(frozen=True)
class Install:
    """One install line: its tool, its words, and what the shell parts around it meant."""

    tool: str  # "pip" or "npm"
    argv: tuple[str, ...]
    line: str
    quiet: bool = False
    dropped: str = ""  # shell text after the install that is not run


Segment = Code | Install


def _words(rest: str, line: str) -> list[str]:
    if "{" in rest or "$" in rest:
        raise UsageError(f"{line.strip()[:80]!r} uses variables ({{...}} or $...), which the "
                         "host cannot see: write the package names out")
    try:
        lexer = shlex.shlex(rest, posix=True, punctuation_chars="|&;<>")
        lexer.whitespace_split = True
        return list(lexer)
    except ValueError as exc:
        raise UsageError(f"cannot parse {line.strip()[:80]!r}: {exc}") from None


def install_of(tool: str, rest: str, line: str) -> Install:
    """The words of an install line, with its shell redirections understood."""
    words = _words(rest, line)
    argv: list[str] = []
    quiet = False
    i = 0
    while i < len(words):
        word, fd = words[i], ""
        if word.isdigit() and words[i + 1:i + 2] and words[i + 1].startswith(">"):
            fd, i = word, i + 1
            word = words[i]
        if word in _REDIRECTS:
            target = words[i + 1] if i + 1 < len(words) else ""
            quiet = quiet or (fd in ("", "1") and not (word == ">&" and target == "2"))
            i += 2
            continue
        if word[:1] in "|&;<>":
            return Install(tool, tuple(argv), line, quiet, " ".join(words[i:]))
        argv.append(word)
        i += 1
    return Install(tool, tuple(argv), line, quiet)


def _python_line(stripped: str, line: str) -> Install | None:
    m = _PY.match(stripped)
    if m:
        return install_of("pip", m.group(1), line)
    m = _NPM.match(stripped)
    if m and stripped.startswith("!"):
        return install_of("npm", m.group(1), line)
    return None


def _python(cell: Code, complete: Callable[[str], tuple[str, int | None]]) -> list[Segment]:
    lines = cell.body.splitlines(keepends=True)
    out: list[Segment] = []
    code: list[str] = []
    for number, line in enumerate(lines, 1):
        found = _python_line(line.strip(), line)
        if found is None:
            code.append(line)
            continue
        status, indent = complete("".join(code)) if "".join(code).strip() else ("complete", None)
        if status == "incomplete" and indent == 0 and not line[:1].isspace():
            code.append(line)  # inside a string or brackets: text, not an install
            continue
        if line[:1].isspace() or status == "incomplete":
            raise UsageError(f"line {number}: {line.strip()[:60]!r} is inside a block; "
                             "installs run on the host between the parts of a cell, so they "
                             "must be at the top level of the cell (not in if, try, for or def)")
        if "".join(code).strip():
            out.append(Code(cell.lang, "".join(code)))
        code = []
        out.append(found)
    if "".join(code).strip() and out:
        out.append(Code(cell.lang, "".join(code)))
    return out


def _node(cell: Code) -> list[Segment]:
    out: list[Segment] = []
    code: list[str] = []
    for line in cell.body.splitlines(keepends=True):
        m = _NPM.match(line.rstrip()) if not line[:1].isspace() else None
        if m is None:
            code.append(line)
            continue
        if "".join(code).strip():
            out.append(Code(cell.lang, "".join(code)))
        code = []
        out.append(install_of("npm", m.group(1), line))
    if "".join(code).strip() and out:
        out.append(Code(cell.lang, "".join(code)))
    return out


def _shell(cell: Code) -> list[Segment]:
    commands = [ln for ln in cell.body.splitlines() if ln.strip() and
                not ln.strip().startswith("#")]
    found: list[Segment] = []
    for line in commands:
        stripped = line.strip()
        m = _SH_PY.match(stripped)
        n = _NPM.match(stripped) if not stripped.startswith(("%", "!")) else None
        if m is None and n is None:
            return []  # a script that does more: it runs in the sandbox as it is
        found.append(install_of("pip", m.group(1), line) if m else
                     install_of("npm", n.group(1) if n else "", line))
    return found


def split_installs(cell: Code, complete: Callable[[str], tuple[str, int | None]]
                   ) -> list[Segment] | None:
    """The cell as code and installs in order, or None if it has no install line.

    `complete` is IPython's check_complete (the Python cell grammar with magics).
    """
    if cell.lang == "python":
        parts = _python(cell, complete)
    elif cell.lang == "node":
        parts = _node(cell)
    else:
        parts = _shell(cell)
    return parts or None
