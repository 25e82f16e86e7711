"""What `pip install ...` and `npm install ...` were asked for, parsed strictly on the host.

The options people type are understood or harmlessly ignored (quiet, user, cache); those
that would choose another source (an index, a URL, a file, an editable checkout) are
refused in one line, since the host fetches from the administrator's index only
(docs/architecture.md, "Packages").
"""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass

from packaging.markers import Marker
from packaging.requirements import InvalidRequirement, Requirement

from ..errors import UsageError
from ..sandbox.packages import TARGET_MARKERS
from ..sandbox.pip_fetch import PipRequest
from .magic_args import magic_parser

_SOURCE_OPTIONS = {"-i", "--index-url", "--extra-index-url", "-f", "--find-links",
                   "--trusted-host", "--no-index", "--registry"}
_PLACE_OPTIONS = {"-t", "--target", "--prefix", "--root", "-e", "--editable", "--src"}
_PIP_IGNORED = ("--user", "--no-cache-dir", "--force-reinstall", "--no-warn-script-location",
                "--disable-pip-version-check", "--break-system-packages", "--no-input",
                "--no-color", "--prefer-binary", "--ignore-installed", "-I", "--isolated",
                "--no-build-isolation", "--no-compile", "--compile", "--require-hashes")
_PIP_IGNORED_VALUE = ("--progress-bar", "--root-user-action", "--only-binary",
                      "--upgrade-strategy", "--timeout", "--retries", "--cache-dir",
                      "--python-version", "--platform", "--abi", "--implementation")
_NPM_FLAGS = ("-S", "--save", "-D", "--save-dev", "-E", "--save-exact", "-O",
              "--save-optional", "-P", "--save-prod", "-g", "--global", "--no-save",
              "--no-audit", "--no-fund", "--legacy-peer-deps", "--force", "-f", "--silent",
              "-s", "--quiet", "-q", "--ignore-scripts", "--no-package-lock", "--prefer-offline",
              "--offline", "--no-progress", "--progress=false", "--verbose")
_NPM_NAME = r"(@[a-z0-9][a-z0-9._~-]*/)?[a-z0-9][a-z0-9._~-]*"
_NPM_SPEC = re.compile(rf"({_NPM_NAME})(@[0-9A-Za-z.^~<>=*|+_ -]+)?")


@dataclass(frozen=True)
class PipInstall:
    """A parsed `pip install`: the request, requirement files to read from the sandbox."""

    request: PipRequest
    files: tuple[str, ...] = ()
    quiet: bool = False


@dataclass(frozen=True)
class NpmInstall:
    specs: dict[str, str]
    quiet: bool = False


def _refuse_sources(argv: list[str], tool: str) -> None:
    for arg in argv:
        opt = arg.split("=", 1)[0]
        if opt in _SOURCE_OPTIONS:
            setting = "Sandbox.pip_index_url" if tool == "pip" else "Sandbox.npm_registry"
            raise UsageError(f"{tool} install {opt}: the host fetches from the administrator's "
                             f"index only ({setting}); drop the option")
        if opt in _PLACE_OPTIONS:
            raise UsageError(f"{tool} install {opt}: packages go to the sandbox's package "
                             "directory; editable installs and other places are not supported")


def _pip_parser() -> argparse.ArgumentParser:
    p = magic_parser("pip install", "Install packages from the administrator's index into "
                     "this sandbox (fetched by the host; the sandbox has no network).")
    p.add_argument("requirements", nargs="*", metavar="PACKAGE")
    p.add_argument("-r", "--requirement", action="append", default=[], metavar="FILE",
                   help="a requirements file in the sandbox (e.g. requirements.txt)")
    p.add_argument("-U", "--upgrade", action="store_true")
    p.add_argument("--no-deps", action="store_true")
    p.add_argument("--pre", action="store_true")
    p.add_argument("-q", "--quiet", action="count", default=0)
    p.add_argument("-v", "--verbose", action="count", default=0)
    p.add_argument("--no-binary", metavar="NAMES")
    for flag in _PIP_IGNORED:
        p.add_argument(flag, action="store_true", help=argparse.SUPPRESS)
    for flag in _PIP_IGNORED_VALUE:
        p.add_argument(flag, help=argparse.SUPPRESS)
    return p


def requirement(text: str, where: str = "pip install") -> str | None:
    """One requirement, checked; None if its marker excludes the sandbox."""
    if "://" in text or text.startswith((".", "/", "~")) or text.endswith(
            (".whl", ".tar.gz", ".zip")) or text.startswith("git+"):
        raise UsageError(f"{where}: {text[:80]!r} is a URL or a file; only packages from the "
                         "index can be installed (the sandbox's own files never go into its "
                         "package directory)")
    try:
        req = Requirement(text)
    except InvalidRequirement:
        raise UsageError(f"{where}: {text[:80]!r} is not a package requirement") from None
    if req.url:
        raise UsageError(f"{where}: {req.name} @ URL is not supported; name a package from the "
                         "index")
    if req.marker is not None and not Marker(str(req.marker)).evaluate(TARGET_MARKERS):
        return None
    return str(req)


def parse_pip(argv: list[str]) -> PipInstall:
    """The words after `pip install`."""
    _refuse_sources(argv, "pip")
    args = _pip_parser().parse_args(argv)
    if args.no_binary and args.no_binary != ":none:":
        raise UsageError("pip install --no-binary: the sandbox installs wheels only (building "
                         "from source would need a compiler and the network)")
    reqs = [r for r in (requirement(t) for t in args.requirements) if r is not None]
    if not reqs and not args.requirement:
        raise UsageError("pip install: name at least one package (e.g. %pip install requests)")
    request = PipRequest(tuple(reqs), upgrade=args.upgrade, no_deps=args.no_deps,
                         pre=args.pre)
    return PipInstall(request, tuple(args.requirement), quiet=args.quiet > 0)


def parse_npm(argv: list[str]) -> NpmInstall:
    """The words after `npm install` (or `npm i`, `npm add`)."""
    _refuse_sources(argv, "npm")
    specs: dict[str, str] = {}
    quiet = False
    for arg in argv:
        if arg.startswith("-"):
            if arg.split("=", 1)[0] not in _NPM_FLAGS and not arg.startswith("--loglevel"):
                raise UsageError(f"npm install: option {arg[:40]} is not supported here")
            quiet = quiet or arg in ("--silent", "-s", "--quiet", "-q")
            continue
        m = _NPM_SPEC.fullmatch(arg)
        if not m or len(m.group(1)) > 214:
            raise UsageError(f"npm install: {arg[:80]!r} is not an npm package from the "
                             "registry (e.g. lodash or lodash@^4.17; URLs, paths and git specs "
                             "are not supported)")
        specs[m.group(1)] = (m.group(3) or "@latest")[1:].strip() or "latest"
    if not specs:
        raise UsageError("npm install: name the packages (e.g. npm install lodash); "
                         "installing a package.json's dependencies is not supported")
    return NpmInstall(specs, quiet)
