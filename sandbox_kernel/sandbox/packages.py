"""What a derived image may add, checked before anything is fetched: pip requirements, Debian
and npm package names, and the image tag.

Every refusal is one sentence naming the file and line, or the argument, that is wrong.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from packaging.markers import Marker
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from ..errors import UsageError

#: Markers are evaluated for the sandbox (CPython 3.11 on Debian bookworm, x86_64), not the host.
TARGET_MARKERS = {
    "implementation_name": "cpython", "implementation_version": "3.11.2",
    "os_name": "posix", "platform_machine": "x86_64", "platform_python_implementation": "CPython",
    "platform_release": "", "platform_system": "Linux", "platform_version": "",
    "python_full_version": "3.11.2", "python_version": "3.11", "sys_platform": "linux",
}
HASH_LENGTHS = {"sha256": 64, "sha384": 96, "sha512": 128}
MAX_REQUIREMENTS_BYTES = 1 << 20

_APT = re.compile(r"[a-z0-9][a-z0-9+.-]+(=[A-Za-z0-9.+~:-]+)?")
_NPM_NAME = r"(@[a-z0-9][a-z0-9._~-]*/)?[a-z0-9][a-z0-9._~-]*"
_NPM = re.compile(rf"({_NPM_NAME})(@[0-9A-Za-z.^~<>=*|+_ -]+)?")
_COMPONENT = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
_DOMAIN = rf"(?:{_LABEL}(?:\.{_LABEL})*(?::[0-9]+)?/)?"
_TAG = re.compile(rf"{_DOMAIN}{_COMPONENT}(?:/{_COMPONENT})*"
                  r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?")
_HASH_OPT = re.compile(r"--hash[= ]([A-Za-z0-9]+):([0-9A-Fa-f]+)")
_COMMENT = re.compile(r"(^|\s)#.*$")


@dataclass(frozen=True)
class Pin:
    """One exact Python distribution: ``name==version`` and the hashes it may have."""

    name: str
    version: str
    hashes: tuple[str, ...] = ()

    def line(self) -> str:
        return " ".join([f"{self.name}=={self.version}", *(f"--hash={h}" for h in self.hashes)])


@dataclass(frozen=True)
class RequirementLine:
    """One requirement of a user's file: its text without hashes, and the hashes given."""

    number: int
    requirement: Requirement
    hashes: tuple[str, ...]

    @property
    def name(self) -> str:
        return canonicalize_name(self.requirement.name)

    def text(self) -> str:
        return str(self.requirement)

    def pin(self) -> Pin:
        """The exact pin of a hashed line (checked by parse_requirements)."""
        spec = next(iter(self.requirement.specifier))
        return Pin(self.name, spec.version, self.hashes)


@dataclass(frozen=True)
class Requirements:
    """A parsed requirements file; `hashed` means every line carries hashes and an exact pin."""

    path: str
    lines: tuple[RequirementLine, ...]

    @property
    def hashed(self) -> bool:
        return bool(self.lines) and all(line.hashes for line in self.lines)


def logical_lines(text: str) -> list[tuple[int, str]]:
    """pip's reading of a requirements file: comments dropped, backslash continuations joined."""
    out: list[tuple[int, str]] = []
    pending, start = "", 0
    for number, raw in enumerate(text.splitlines(), 1):
        line = _COMMENT.sub("", raw).rstrip()
        if not pending:
            start = number
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = (pending + line).strip()
        pending = ""
        if line:
            out.append((start, line))
    if pending.strip():
        out.append((start, pending.strip()))
    return out


def _hashes(where: str, text: str) -> tuple[str, tuple[str, ...]]:
    found = []
    for algo, digest in _HASH_OPT.findall(text):
        if HASH_LENGTHS.get(algo) != len(digest):
            raise UsageError(f"{where}: --hash={algo}:{digest[:12]}... is not a sha256, sha384 "
                             "or sha512 digest")
        found.append(f"{algo}:{digest.lower()}")
    rest = _HASH_OPT.sub("", text).strip()
    if "--hash" in rest:
        raise UsageError(f"{where}: malformed --hash option (expected --hash=sha256:HEX)")
    return rest, tuple(found)


def parse_line(where: str, number: int, text: str) -> RequirementLine | None:
    """One logical line; None if its marker excludes the sandbox's platform."""
    rest, hashes = _hashes(where, text)
    if rest.startswith("-"):
        option = rest.split()[0]
        raise UsageError(f"{where}: option {option} is not supported here; list one package "
                         "requirement per line (the index is the host's setting)")
    try:
        req = Requirement(rest)
    except InvalidRequirement:
        raise UsageError(f"{where}: {rest[:80]!r} is not a package requirement (URLs, paths "
                         "and editable installs are not supported)") from None
    if req.url:
        raise UsageError(f"{where}: {req.name} @ URL is not supported; name a package from "
                         "the index")
    if req.marker is not None and not Marker(str(req.marker)).evaluate(TARGET_MARKERS):
        return None
    if hashes:
        specs = list(req.specifier)
        if len(specs) != 1 or specs[0].operator != "==" or "*" in specs[0].version:
            raise UsageError(f"{where}: a requirement with --hash must be pinned with == "
                             f"(got {str(req)!r})")
    return RequirementLine(number, req, hashes)


def parse_requirements(path: Path) -> Requirements:
    """Read and check a user's requirements file (one-line UsageError on anything wrong)."""
    try:
        if path.stat().st_size > MAX_REQUIREMENTS_BYTES:
            raise UsageError(f"{path}: requirements file larger than 1 MiB")
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"requirements file not found: {path}") from None
    except IsADirectoryError:
        raise UsageError(f"requirements file is a directory: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read requirements file {path}: "
                         f"{getattr(exc, 'strerror', None) or exc}") from None
    lines: list[RequirementLine] = []
    seen: dict[str, int] = {}
    for number, text_line in logical_lines(text):
        where = f"{path}:{number}"
        line = parse_line(where, number, text_line)
        if line is None:
            continue
        if line.name in seen:
            raise UsageError(f"{where}: {line.name} is already required on line "
                             f"{seen[line.name]}")
        seen[line.name] = number
        lines.append(line)
    if not lines:
        raise UsageError(f"{path} lists no requirements for the sandbox's platform")
    reqs = Requirements(str(path), tuple(lines))
    bare = [line for line in lines if not line.hashes]
    if bare and len(bare) != len(lines):
        raise UsageError(f"{path}:{bare[0].number}: {bare[0].name} has no --hash but other lines "
                         "do; give hashes for every requirement or for none")
    return reqs


def check_apt(names: list[str]) -> tuple[str, ...]:
    for name in names:
        if not _APT.fullmatch(name):
            raise UsageError(f"--apt {name!r} is not a Debian package name (e.g. graphviz or "
                             "graphviz=2.42.2-7)")
    return tuple(names)


def check_npm(specs: list[str]) -> dict[str, str]:
    """``name[@range]`` specs as package.json dependencies (range ``latest`` if none)."""
    deps: dict[str, str] = {}
    for spec in specs:
        m = _NPM.fullmatch(spec)
        if not m or len(m.group(1)) > 214:
            raise UsageError(f"--npm {spec!r} is not an npm package from the registry (e.g. "
                             "lodash or lodash@^4.17; URLs, paths and git specs are not supported)")
        name, version = m.group(1), (m.group(3) or "@latest")[1:].strip()
        if name in deps:
            raise UsageError(f"--npm {name} is given twice")
        deps[name] = version or "latest"
    return deps


def check_tag(tag: str, option: str = "--tag") -> str:
    if not _TAG.fullmatch(tag) or len(tag) > 255:
        raise UsageError(f"{option} {tag!r} is not a valid image name (e.g. "
                         "sandbox-kernel/course:2025)")
    return tag
