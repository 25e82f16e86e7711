"""npm packages for a live install, resolved and fetched on the host (npm.py's way).

The sandbox's Node packages are one npm project (package.json, package-lock.json) that the
host keeps for the session: each install resolves the project plus the new packages with
``npm install --package-lock-only`` (existing versions stay as locked), fetches the tarballs
it lacks with ``npm cache add`` into a per-user cache, and checks each against the lock's
sha512 integrity. The sandbox gets the project files and the new tarballs; npm installs them
there offline, without scripts.
"""

from __future__ import annotations

import json
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import BuildError, InstallError
from . import npm

MANIFEST = {"name": "sandbox-session-packages", "private": True,
            "description": "npm packages installed live in this sandbox (sandbox-kernel)"}


@dataclass(frozen=True)
class Tarball:
    """One package tarball of the lock: its name, version, sha512 and the cached file."""

    name: str
    version: str
    sha512: str
    path: Path

    @property
    def size(self) -> int:
        return self.path.stat().st_size


@dataclass(frozen=True)
class NpmProject:
    """The session's npm project: top-level dependencies (exact) and the lock's text."""

    deps: Mapping[str, str] = field(default_factory=dict)
    lock: str = ""


def classify(stderr: str, registry: str) -> InstallError:
    """npm's failure as one of the documented one-line errors."""
    line = npm.npm_error(stderr)
    if re.search(r"E(NOTFOUND|AI_AGAIN|CONNREFUSED|CONNRESET|TIMEDOUT)|ETIMEDOUT|"
                 r"UNABLE_TO_|self.signed|network", stderr):
        return InstallError(f"the npm registry {registry} cannot be reached from the host "
                            f"({line[:200]})", "unreachable")
    if "E404" in stderr or "404 Not Found" in stderr:
        missing = re.search(r"'([^']+)' is not in this registry", stderr)
        what = missing.group(1) if missing else "a package"
        return InstallError(f"{what} was not found on the npm registry {registry}",
                            "not_found")
    if "ETARGET" in stderr:
        return InstallError(f"no matching version on the npm registry: {line}", "not_found")
    return InstallError(f"npm could not resolve the packages: {line}", "failed")


def _run(folder: Path, args: list[str], registry: str, cache: Path) -> None:
    try:
        proc = npm.run_npm(folder, args, registry, cache, timeout=600)
    except BuildError as exc:
        raise InstallError(str(exc), "failed") from None
    if proc.returncode != 0:
        raise classify(proc.stderr, registry)


def entries(lock_text: str) -> dict[str, Mapping[str, Any]]:
    """The lock's packages that install on the sandbox (Linux x64, glibc), by path."""
    lock = json.loads(lock_text)
    return {path: e for path, e in lock.get("packages", {}).items()
            if path and not e.get("link") and npm.for_sandbox(e)}


def name_of(path: str, entry: Mapping[str, Any]) -> str:
    return str(entry.get("name") or path.rsplit("node_modules/", 1)[-1])


def resolve(project: NpmProject, specs: Mapping[str, str], registry: str,
            cache: Path) -> tuple[NpmProject, list[Tarball]]:
    """The project with specs added, and every tarball of its lock, fetched and checked."""
    with tempfile.TemporaryDirectory(prefix="sandbox-npm-") as tmp:
        folder = Path(tmp)
        (folder / "package.json").write_text(json.dumps(
            {**MANIFEST, "dependencies": dict(project.deps)}, indent=2) + "\n")
        if project.lock:
            (folder / "package-lock.json").write_text(project.lock)
        _run(folder, ["install", "--package-lock-only", "--save-exact",
                      *(f"{n}@{r}" for n, r in specs.items())], registry, cache)
        lock = (folder / "package-lock.json").read_text()
        deps = json.loads((folder / "package.json").read_text()).get("dependencies", {})
    found = entries(lock)
    missing = []
    for path, entry in found.items():
        try:
            npm.check_cached(cache, path, entry)
        except BuildError:
            missing.append(f"{name_of(path, entry)}@{entry['version']}")
    if missing:
        with tempfile.TemporaryDirectory(prefix="sandbox-npm-") as tmp:
            _run(Path(tmp), ["cache", "add", *sorted(set(missing))], registry, cache)
    tarballs = []
    for path, entry in found.items():
        try:
            blob = npm.check_cached(cache, path, entry)
        except BuildError as exc:
            raise InstallError(str(exc), "failed") from None
        tarballs.append(Tarball(name_of(path, entry), str(entry.get("version", "")),
                                npm.sha512_hex(path, entry), blob))
    return NpmProject({str(k): str(v) for k, v in deps.items()}, lock), tarballs
