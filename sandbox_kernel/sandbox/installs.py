"""Live installs into a running sandbox whose network stays off (docs/architecture.md,
"Packages"): resolve and fetch on the host under the policy, stream the files in through
the agent, and install them there offline as the installer uid.

Jupyter-free: the kernel (kernel/pip_commands.py) parses what users type and shows the
progress this module reports through a `Reporter`.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import weakref
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from ..errors import FileOperationError, InstallError, SandboxTimeout, SessionGone
from . import npm_fetch, pip_fetch, wheels
from .install_policy import InstallPolicy
from .npm_fetch import NpmProject, Tarball
from .pip_fetch import PipRequest, Wheel
from .runs import exec_result
from .session import AsyncSession
from .spec import ExecResult
from .units import human_size

_CHUNK = 1 << 20
_PLATFORM = "CPython 3.11, manylinux x86_64"


class Reporter(Protocol):
    """Where progress goes: lines, and bytes of one file as they are fetched."""

    def line(self, text: str) -> None: ...

    def fetching(self, name: str, done: int, total: int) -> None: ...


@dataclass
class SessionPackages:
    """What the host installed into one sandbox (it is gone with the sandbox)."""

    image: dict[str, str] | None = None
    python: dict[str, str] = field(default_factory=dict)
    npm: NpmProject = field(default_factory=NpmProject)
    shipped: set[str] = field(default_factory=set)  # sha512 of tarballs already inside
    bytes_in: int = 0


async def _file_chunks(path: Path) -> AsyncIterator[bytes]:
    with path.open("rb") as f:
        while block := await asyncio.to_thread(f.read, _CHUNK):
            yield block


async def _stage(session: AsyncSession, name: str, path: Path) -> None:
    try:
        await session.files.stage_from(name, _file_chunks(path), path.stat().st_size)
    except FileOperationError as exc:
        if exc.code != "ENOSPC":
            raise
        raise InstallError(f"the sandbox's package directory is full (packages_size "
                           f"{human_size(session.limits.packages_size)})", "size") from None


async def run_installer(session: AsyncSession, tool: str, files: Mapping[str, str],
                        on_output: Callable[[str, str], None] | None = None) -> ExecResult:
    """The agent's installer over staged files, to completion (its output streamed)."""
    timeout = session.limits.timeout
    session.touch(busy=+1)
    call = await session.channel.call("install", tool=tool, files=dict(files), timeout=timeout,
                                      output_cap=session.limits.output)
    try:
        async for frame in call.frames(timeout + 10):
            if frame["type"] == "stream" and on_output is not None:
                on_output(frame["name"], frame["text"])
            elif frame["type"] == "exited":
                return exec_result(frame)
        raise SessionGone("the sandbox ended the install without a result")
    except SandboxTimeout:
        raise InstallError(f"the install did not finish within {timeout:g} s", "failed") \
            from None
    finally:
        session.channel.forget(call)
        session.touch(busy=-1)


def _failed(result: ExecResult, what: str) -> InstallError:
    lines = [ln for ln in (result.stderr + "\n" + result.stdout).splitlines() if ln.strip()]
    why = " ".join(lines[-3:])[:600] or f"exit status {result.exit_code}"
    if result.timed_out:
        why = "it ran past the cell timeout"
    return InstallError(f"installing {what} in the sandbox failed: {why}", "failed")


class Installs:
    """Live installs of one kernel (or library caller), per sandbox."""

    def __init__(self, policy: InstallPolicy, cache: Path | None = None) -> None:
        self.policy = policy
        self.cache = cache or pip_fetch.install_cache()
        self._state: weakref.WeakKeyDictionary[AsyncSession, SessionPackages] = \
            weakref.WeakKeyDictionary()

    def state(self, session: AsyncSession) -> SessionPackages:
        return self._state.setdefault(session, SessionPackages())

    async def installed(self, session: AsyncSession) -> dict[str, str]:
        """Python distributions in the sandbox: the image's, then the session's over them."""
        state = self.state(session)
        if state.image is None:
            result = await run_installer(session, "inventory", {})
            if result.exit_code != 0:
                raise _failed(result, "the inventory")
            try:
                data = json.loads(result.stdout.strip().splitlines()[-1])
                image, ours = dict(data["image"]), dict(data["session"])
            except (ValueError, KeyError, IndexError, TypeError):
                raise InstallError("the sandbox's package inventory was unreadable",
                                   "failed") from None
            state.image = {canonicalize_name(str(k)): str(v) for k, v in image.items()}
            state.python.update({canonicalize_name(str(k)): str(v) for k, v in ours.items()})
        return {**state.image, **state.python}

    # ----- pip ----------------------------------------------------------------------------
    async def pip(self, session: AsyncSession, request: PipRequest, report: Reporter) -> None:
        names = request.names()
        self.policy.pip.check(names)
        have = await self.installed(session)
        if not request.upgrade and self._satisfied(request, have, report):
            return
        index, extra = self.policy.indexes()
        report.line(f"Resolving {', '.join(request.requirements)} for the sandbox "
                    f"({_PLATFORM}) on {index}")
        found = await asyncio.to_thread(pip_fetch.resolve, request, have, index, extra)
        new = [w for w in found if not wheels.same_version(have.get(w.name, ""), w.version)]
        if not new:
            report.line("Nothing to install: every package is already in the sandbox")
            return
        self.policy.pip.check([w.name for w in new], names)
        state = self.state(session)
        self.policy.check_size(state.bytes_in, sum(w.size for w in new))
        files = await self._fetch_wheels(new, report)
        size = sum(p.stat().st_size for p in files.values())
        self.policy.check_size(state.bytes_in, size)  # where the index did not say
        for w in new:
            await _stage(session, w.filename, files[w.name])
        report.line(f"Installing {len(new)} package(s) in the sandbox")
        result = await run_installer(session, "pip",
                                     {w.filename: f"sha256:{w.sha256}" for w in new})
        if result.exit_code != 0:
            raise _failed(result, ", ".join(w.name for w in new))
        replaced = [w for w in new if w.name in have]
        state.python.update({w.name: w.version for w in new})
        state.bytes_in += size
        report.line("Successfully installed " + " ".join(f"{w.name}-{w.version}" for w in new))
        if replaced:
            old = ", ".join(f"{w.name} {have[w.name]}" for w in replaced)
            report.line(f"Note: this replaces {old}; an interpreter that imported it keeps the "
                        "old version until %sandbox restart --interpreter (installed packages "
                        "stay)")

    @staticmethod
    def _satisfied(request: PipRequest, have: Mapping[str, str], report: Reporter) -> bool:
        reqs = [Requirement(r) for r in request.requirements]
        ok = [r for r in reqs if not r.extras and have.get(canonicalize_name(r.name)) and
              r.specifier.contains(have[canonicalize_name(r.name)], True)]
        if len(ok) != len(reqs):
            return False
        for r in ok:
            report.line(f"Requirement already satisfied: {r.name} "
                        f"({have[canonicalize_name(r.name)]})")
        return True

    async def _fetch_wheels(self, new: list[Wheel], report: Reporter) -> dict[str, Path]:
        files: dict[str, Path] = {}
        for w in new:
            cached = pip_fetch.cached(w, self.cache)
            size = human_size(w.size) if w.size else "size not given by the index"
            report.line(f"{'Using cached' if cached else 'Fetching'} {w.filename} ({size})")
            if cached is None:
                index, extra = self.policy.indexes()
                cached = await asyncio.to_thread(pip_fetch.fetch, w, self.cache,
                                                 report.fetching, self.policy.max_total,
                                                 (index, *extra))
            files[w.name] = cached
        return files

    # ----- npm ----------------------------------------------------------------------------
    async def npm(self, session: AsyncSession, specs: Mapping[str, str],
                  report: Reporter) -> None:
        self.policy.npm.check(list(specs))
        state = self.state(session)
        registry = self.policy.registry()
        report.line(f"Resolving {', '.join(f'{n}@{r}' for n, r in specs.items())} on "
                    f"{registry}")
        project, tarballs = await asyncio.to_thread(
            npm_fetch.resolve, state.npm, specs, registry, self.cache / "npm")
        self.policy.npm.check([t.name for t in tarballs], list(specs))
        new = [t for t in tarballs if t.sha512 not in state.shipped]
        size = sum(t.size for t in new)
        self.policy.check_size(state.bytes_in, size)
        for t in new:
            report.line(f"Fetched {t.name}@{t.version} ({human_size(t.size)})")
        files = {f"{t.sha512}.tgz": f"sha512:{t.sha512}" for t in new}
        for t in new:
            await _stage(session, f"{t.sha512}.tgz", t.path)
        for name, text in (("package.json", _manifest(project)), ("package-lock.json",
                                                                    project.lock)):
            data = text.encode()
            await session.files.stage_from(name, [data], len(data))
            files[name] = "sha256:" + hashlib.sha256(data).hexdigest()
        report.line(f"Installing {len(new)} npm package(s) in the sandbox")
        result = await run_installer(session, "npm", files)
        if result.exit_code != 0:
            raise _failed(result, ", ".join(specs))
        state.npm = project
        state.shipped.update(t.sha512 for t in new)
        state.bytes_in += size
        named = [t for t in tarballs if t.name in specs]
        deps = len([t for t in new if t.name not in specs])
        report.line("added " + " ".join(f"{t.name}@{t.version}" for t in named) +
                    (f" ({deps} dependencies)" if deps else ""))


def _manifest(project: NpmProject) -> str:
    return json.dumps({**npm_fetch.MANIFEST, "dependencies": dict(project.deps)}, indent=2) + "\n"


__all__ = ["Installs", "Reporter", "SessionPackages", "Tarball", "run_installer"]
