"""Python packages for a live install, resolved and fetched on the host for the sandbox.

uv resolves for the sandbox's interpreter and platform (as wheels.py does for images) and
writes a pylock.toml (PEP 751) listing, for each package, the wheels that fit with their
URL, size and sha256. The host takes the best fit in the sandbox's tag order, checks the
policy and the size cap before anything is downloaded, and fetches each wheel (streamed,
hash-checked) into a per-user cache, where the next install finds it. The packages already
in the sandbox are constraints: they keep their versions unless the user names them.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import subprocess
import sys
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.requirements import Requirement
from packaging.tags import Tag, compatible_tags, cpython_tags
from packaging.utils import canonicalize_name, parse_wheel_filename

from ..errors import InstallError
from . import wheels
from .units import human_size

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

Progress = Callable[[str, int, int], None]  # file name, bytes so far, total
_UNREACHABLE = ("Failed to fetch", "error sending request", "tcp connect error", "dns error",
                "Connection refused", "timed out", "certificate")
_NO_WHEEL = ("has no usable wheels", "has no wheels with a matching", "only has source")


@dataclass(frozen=True)
class Wheel:
    """One wheel the sandbox needs: where it is, how big, and its sha256."""

    name: str
    version: str
    filename: str
    url: str
    size: int
    sha256: str


@dataclass(frozen=True)
class PipRequest:
    """What `pip install` was asked for (kernel/pip_args.py parses it)."""

    requirements: tuple[str, ...]
    upgrade: bool = False
    no_deps: bool = False
    pre: bool = False

    def names(self) -> list[str]:
        return [canonicalize_name(Requirement(r).name) for r in self.requirements]


def sandbox_tags() -> list[Tag]:
    """The tags the sandbox's CPython 3.11 on glibc 2.36 x86_64 accepts, best first."""
    platforms = [f"manylinux_2_{m}_x86_64" for m in range(wheels.GLIBC_MINOR, 4, -1)]
    platforms += ["manylinux2014_x86_64", "manylinux2010_x86_64", "manylinux1_x86_64"]
    return [*cpython_tags((3, 11), ["cp311"], platforms),
            *compatible_tags((3, 11), "cp311", platforms)]


def best_wheel(name: str, version: str, entries: Sequence[Mapping[str, Any]],
               ranks: Mapping[Tag, int]) -> Wheel:
    """The wheel of a pylock package entry that the sandbox prefers."""
    best: tuple[int, Mapping[str, Any], str] | None = None
    for entry in entries:
        filename = str(entry.get("url", "")).rsplit("/", 1)[-1].split("#")[0]
        try:
            tags = parse_wheel_filename(filename)[3]
        except ValueError:
            continue
        rank = min((ranks[t] for t in tags if t in ranks), default=None)
        if rank is not None and (best is None or rank < best[0]):
            best = (rank, entry, filename)
    sha = str(((best[1].get("hashes") or {}) if best else {}).get("sha256", ""))
    if best is None or not re.fullmatch(r"[0-9a-f]{64}", sha):
        raise InstallError(f"no wheel of {name} {version} for the sandbox's platform "
                           "(CPython 3.11, manylinux x86_64)", "no_wheel")
    return Wheel(name, version, best[2], str(best[1]["url"]), int(best[1].get("size") or 0),
                 sha)


def parse_pylock(text: str) -> list[Wheel]:
    data = tomllib.loads(text)
    ranks = {t: i for i, t in enumerate(sandbox_tags())}
    return [best_wheel(canonicalize_name(p["name"]), str(p["version"]), p.get("wheels") or [],
                       ranks) for p in data.get("packages", [])]


def classify(stderr: str, index: str) -> InstallError:
    """uv's failure as one of the documented one-line errors."""
    line = wheels.one_line(stderr)
    if any(s in stderr for s in _UNREACHABLE):
        return InstallError(f"the package index {index} cannot be reached from the host "
                            f"({line[:200]})", "unreachable")
    if "not found in the package registry" in stderr:
        missing = re.search(r"Because (\S+) was not found", stderr)
        what = missing.group(1) if missing else "a package"
        return InstallError(f"{what} was not found on the package index {index}", "not_found")
    if any(s in stderr for s in _NO_WHEEL):
        return InstallError(f"no wheel for the sandbox's platform (CPython 3.11, manylinux "
                            f"x86_64): {line}", "no_wheel")
    return InstallError(f"cannot resolve for the sandbox: {line}", "not_found")


def constraints(request: PipRequest, installed: Mapping[str, str]) -> list[str]:
    """Installed packages keep their versions, except those named with a version they do
    not have (or with --upgrade)."""
    free: set[str] = set()
    for text in request.requirements:
        req = Requirement(text)
        name = canonicalize_name(req.name)
        have = installed.get(name)
        if request.upgrade or (have is not None and not req.specifier.contains(have, True)):
            free.add(name)
    return [f"{n}=={v}" for n, v in sorted(installed.items()) if n not in free]


def resolve(request: PipRequest, installed: Mapping[str, str], index: str,
            extra: Sequence[str] = ()) -> list[Wheel]:
    """Every wheel the request needs on the sandbox (installed ones included)."""
    with tempfile.TemporaryDirectory(prefix="sandbox-install-") as tmp:
        folder = Path(tmp)
        (folder / "requirements.in").write_text("".join(r + "\n" for r in request.requirements))
        (folder / "constraints.txt").write_text(
            "".join(c + "\n" for c in constraints(request, installed)))
        # --python: this interpreter, so uv does not probe every Python on the PATH (half a
        # second); what it resolves for is --python-version and --python-platform.
        argv = [wheels.uv_binary(), "pip", "compile", "--quiet", "--no-config", "--system-certs",
                "--python", sys.executable, "--python-version", wheels.PYTHON_VERSION,
                "--python-platform", wheels.UV_PLATFORM, "--only-binary", ":all:",
                "--index-url", index,
                *(a for url in extra for a in ("--extra-index-url", url)),
                "--constraint", "constraints.txt", "-o", "pylock.toml", "requirements.in"]
        argv += ["--no-deps"] if request.no_deps else []
        argv += ["--prerelease", "allow"] if request.pre else []
        env = {**wheels.clean_env(), "UV_HTTP_RETRIES": "1", "UV_HTTP_TIMEOUT": "30"}
        try:
            proc = subprocess.run(argv, cwd=folder, env=env, capture_output=True, text=True,
                                  timeout=600, check=False)
        except subprocess.TimeoutExpired:
            raise InstallError(f"resolving took longer than 10 min on {index}",
                               "unreachable") from None
        if proc.returncode != 0:
            raise classify(proc.stderr, index)
        return parse_pylock((folder / "pylock.toml").read_text())


def install_cache(environ: Mapping[str, str] = os.environ) -> Path:
    """Per-user cache of fetched files: $SANDBOX_INSTALL_CACHE, else the XDG cache."""
    if environ.get("SANDBOX_INSTALL_CACHE"):
        return Path(environ["SANDBOX_INSTALL_CACHE"])
    cache = environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "sandbox-kernel" / "installs"


def cached(wheel: Wheel, cache: Path) -> Path | None:
    path = cache / "wheels" / wheel.sha256 / wheel.filename
    return path if path.is_file() and path.stat().st_size == (wheel.size or
                                                                path.stat().st_size) else None


def _request(url: str, indexes: Sequence[str]) -> urllib.request.Request:
    """A GET of url, with the credentials of an index on the same host (user:pass@host)."""
    req = urllib.request.Request(url)
    host = urllib.parse.urlsplit(url).hostname
    for index in indexes:
        parts = urllib.parse.urlsplit(index)
        if parts.username and parts.hostname == host:
            token = f"{urllib.parse.unquote(parts.username)}:" \
                f"{urllib.parse.unquote(parts.password or '')}"
            req.add_header("Authorization",
                           "Basic " + base64.b64encode(token.encode()).decode())
            break
    return req


def fetch(wheel: Wheel, cache: Path, progress: Progress | None = None,
          limit: int = 1 << 40, indexes: Sequence[str] = ()) -> Path:
    """The wheel in the cache: downloaded (streamed, sha256-checked) unless already there;
    never more than `limit` bytes (the size cap, where the index gave no size)."""
    found = cached(wheel, cache)
    if found is not None:
        return found
    dest = cache / "wheels" / wheel.sha256 / wheel.filename
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + f".{os.getpid()}.part")
    h = hashlib.sha256()
    done = 0
    try:
        with urllib.request.urlopen(_request(wheel.url, indexes), timeout=60) as resp, \
                part.open("wb") as out:
            while block := resp.read(1 << 16):
                h.update(block)
                out.write(block)
                done += len(block)
                if done > limit:
                    raise InstallError(f"{wheel.filename} is over the size cap of "
                                       f"{human_size(limit)} per sandbox "
                                       "(Sandbox.install_max_size)", "size")
                if progress is not None:
                    progress(wheel.filename, done, wheel.size or done)
    except InstallError:
        part.unlink(missing_ok=True)
        raise
    except (urllib.error.URLError, OSError) as exc:
        part.unlink(missing_ok=True)
        raise InstallError(f"cannot fetch {wheel.filename} from the index ({exc})",
                           "unreachable") from None
    if h.hexdigest() != wheel.sha256:
        part.unlink(missing_ok=True)
        raise InstallError(f"{wheel.filename} from the index does not match its sha256 "
                           f"({wheel.sha256[:12]}...); nothing was installed", "failed")
    part.replace(dest)
    return dest
