"""Live installs from cells: install lines (`%pip install`, `!pip install`, `npm install`)
and `%sandbox pip install` / `%sandbox npm install`, shown as they progress.

The work is sandbox/installs.py's; this module turns what users type into its requests and
its reports into stream lines and an in-place progress line per large file. As with pip on
a local kernel, a failed `%pip install` prints its one-line error and the cell goes on;
`%sandbox pip install` fails the cell (docs/architecture.md, "Packages").
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from ..errors import FileOperationError, InstallError, UsageError
from ..sandbox.units import human_size
from .cells import Code
from .execution import Outcome
from .install_cells import Install, Segment, split_installs

if TYPE_CHECKING:  # the install machinery (packaging, fetchers) loads at the first install
    from ..sandbox.installs import Installs
    from ..sandbox.session import AsyncSession
    from .commands import Commands

_PROGRESS_FROM = 1 << 20
_MAX_REQUIREMENTS = 1 << 20


class _Report:
    """A Reporter that writes to the cell (thread-safe for fetch progress)."""

    def __init__(self, cmds: Commands, quiet: bool) -> None:
        self.cmds = cmds
        self.quiet = quiet
        self.loop = asyncio.get_running_loop()
        self.shown: dict[str, tuple[str, int]] = {}

    def line(self, text: str) -> None:
        if not self.quiet:
            self.cmds.say(text)

    def fetching(self, name: str, done: int, total: int) -> None:
        if self.quiet or total < _PROGRESS_FROM:
            return
        self.loop.call_soon_threadsafe(self._progress, name, done, total)

    def _progress(self, name: str, done: int, total: int) -> None:
        pct = min(100, int(100 * done / total))
        display, last = self.shown.get(name, (f"sandbox-fetch-{uuid.uuid4().hex[:8]}", -1))
        if pct // 5 == last // 5 and pct != 100:
            return
        self.cmds.show({"text/plain": f"  {name}: {human_size(done)} of {human_size(total)} "
                                      f"({pct}%)"}, display, update=last >= 0)
        self.shown[name] = (display, pct)


class PackageCommands:
    """The live installs of one kernel."""

    def __init__(self, cmds: Commands, make_installs: Callable[[], Installs]) -> None:
        self.cmds = cmds
        self._make_installs = make_installs
        self._installs: Installs | None = None
        self._complete: Callable[[str], tuple[str, int | None]] | None = None

    @property
    def installs(self) -> Installs:
        if self._installs is None:
            self._installs = self._make_installs()
        return self._installs

    def check_complete(self, code: str) -> tuple[str, int | None]:
        """IPython's reading of where a statement ends (magics and `!` included)."""
        if self._complete is None:
            from IPython.core.inputtransformer2 import TransformerManager

            self._complete = TransformerManager().check_complete
        return self._complete(code)

    async def run_cell(self, cell: Code,
                       run_code: Callable[[Code], Awaitable[Outcome]]) -> Outcome:
        """A cell's code and install lines in order; the last code's outcome. Code that
        fails stops the cell, as it would anyway."""
        parts = split_installs(cell, self.check_complete)
        if parts is None:
            return await run_code(cell)
        outcome = await self.run_parts(parts, run_code)
        return outcome or _ok()

    async def run_parts(self, parts: list[Segment],
                        run_code: Callable[[Code], Awaitable[Outcome]]) -> Outcome | None:
        outcome = None
        for part in parts:
            if isinstance(part, Install):
                await self.run(part, strict=False)
                continue
            outcome = await run_code(part)
            if outcome.reply.get("status") != "ok":
                return outcome
        return outcome

    async def run(self, install: Install, strict: bool) -> bool:
        """One install; its failure is one stderr line (or the cell's error, if strict)."""
        from .pip_args import parse_npm

        session = await self.cmds.session()
        try:
            if install.tool == "pip":
                await self._pip(session, install)
            else:
                parsed = parse_npm(list(install.argv))
                await self.installs.npm(session, parsed.specs, _Report(
                    self.cmds, parsed.quiet or install.quiet))
        except (InstallError, UsageError, FileOperationError) as exc:
            if strict:
                raise UsageError(str(exc)) from None
            self.cmds.kernel.stream("stderr", f"ERROR: {exc}\n")
            return False
        finally:
            if install.dropped:
                self.cmds.kernel.stream("stderr", f"[sandbox] not run: {install.dropped[:200]} "
                                        "(an install runs on the host, not in a shell)\n")
        return True

    async def _pip(self, session: AsyncSession, install: Install) -> None:
        from ..sandbox.pip_fetch import PipRequest
        from .pip_args import parse_pip

        parsed = parse_pip(list(install.argv))
        request = parsed.request
        for path in parsed.files:
            request = PipRequest((*request.requirements, *await self._read_file(session, path)),
                                 request.upgrade, request.no_deps, request.pre)
        if not request.requirements:
            raise UsageError("pip install: the requirements files list no packages for the "
                             "sandbox")
        await self.installs.pip(session, request, _Report(self.cmds, parsed.quiet or
                                                          install.quiet))

    @staticmethod
    async def _read_file(session: AsyncSession, path: str) -> list[str]:
        """A requirements file from the sandbox (relative to /sandbox), checked line by line."""
        from ..sandbox.packages import logical_lines
        from .pip_args import requirement

        data = await session.files.read(path, _MAX_REQUIREMENTS)
        found: list[str] = []
        for number, text in logical_lines(data.decode("utf-8", "replace")):
            words = [w for w in text.split() if not w.startswith("--hash")]
            if not words or words[0].startswith("-"):
                raise UsageError(f"{path}:{number}: {text[:60]!r}: only package requirements "
                                 "are supported in a requirements file here")
            req = requirement(" ".join(words), f"{path}:{number}")
            if req is not None:
                found.append(req)
        return found

    # ----- %sandbox pip / %sandbox npm ------------------------------------------------------
    async def cmd_pip(self, argv: list[str], body: str | None) -> None:
        await self._command("pip", argv)

    async def cmd_npm(self, argv: list[str], body: str | None) -> None:
        await self._command("npm", argv)

    async def _command(self, tool: str, argv: list[str]) -> None:
        verbs = ("install",) if tool == "pip" else ("install", "i", "add")
        if not argv or argv[0] in ("-h", "--help"):
            self.cmds.say(_HELP[tool])
            return
        if argv[0] not in verbs:
            raise UsageError(f"%sandbox {tool}: only '{tool} install' runs on the host "
                             f"(got {argv[0][:30]!r}); other {tool} commands run in the "
                             f"sandbox: !{tool} {argv[0][:30]} ...")
        await self.run(Install(tool, tuple(argv[1:]), f"%sandbox {tool}"), strict=True)


def _ok() -> Outcome:
    return Outcome({"status": "ok"}, {"verdict": "ok"})


_HELP: dict[str, Any] = {
    "pip": "%sandbox pip install PACKAGE ... [-U] [--no-deps] [--pre] [-q] [-r FILE]\n"
           "Resolve and fetch on the host (CPython 3.11, manylinux x86_64) from the "
           "administrator's index, then install into this sandbox's package directory. The "
           "same as %pip install and !pip install in a cell.",
    "npm": "%sandbox npm install PACKAGE[@RANGE] ...\n"
           "Resolve and fetch on the host from the administrator's npm registry, then install "
           "into this sandbox (require() finds them). The same as npm install in a Node cell.",
}
