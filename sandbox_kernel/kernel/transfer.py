"""Moving files between the notebook's directory and the sandbox, safely on the host side.

The host side is where a mistake would hurt: localfiles.py decides which local paths may
be read or written. A download never replaces an existing file unless the cell says
--force AND the user answers yes to a prompt the frontend shows (batch runs have no
stdin, so they refuse). Bytes stream in chunks both ways, so a transfer of any size holds
a chunk or two in memory; large transfers show a progress line that updates in place.
"""

from __future__ import annotations

import asyncio
import posixpath
import time
import uuid
from functools import partial
from typing import TYPE_CHECKING

from ..errors import FileOperationError, UsageError
from ..sandbox.files import read_ahead
from ..sandbox.units import human_size
from .localfiles import LocalSink, LocalSource, local_exists, parts_of

if TYPE_CHECKING:
    from ..sandbox.session import AsyncSession
    from .commands import Commands

_PROGRESS_FROM = 1 << 20
#: The progress line changes at most this often (and always at 100%): each change is an
#: IOPub message, and one per chunk cost a quarter of an upload's time.
_PROGRESS_EVERY_S = 0.25


class _Progress:
    """An in-place "uploading NAME: N% of SIZE" line, shown for transfers of 1 MiB or more."""

    def __init__(self, cmds: Commands, verb: str, name: str, total: int) -> None:
        self.cmds, self.verb, self.name, self.total = cmds, verb, name, total
        self.id = f"sandbox-transfer-{uuid.uuid4().hex[:8]}"
        self.shown = False
        self.last = -1
        self.at = 0.0  # when the line last changed

    def __call__(self, done: int) -> None:
        if self.total < _PROGRESS_FROM:
            return
        pct = int(100 * done / self.total) if self.total else 100
        now = time.monotonic()
        if pct == self.last or (self.shown and pct < 100 and now - self.at < _PROGRESS_EVERY_S):
            return
        self.last, self.at = pct, now
        text = f"{self.verb} {self.name}: {pct}% of {human_size(self.total)}"
        self.cmds.show({"text/plain": text}, self.id, update=self.shown)
        self.shown = True


async def upload(cmds: Commands, session: AsyncSession, local: str,
                 remote: str | None) -> None:
    cap = session.limits.sandbox_size
    source = await asyncio.to_thread(LocalSource, local, cap)
    target = remote or source.name
    progress = _Progress(cmds, "uploading", source.name, source.size)
    try:
        chunks = read_ahead(partial(next, source.chunks(), b""))
        sent = await session.files.write_from(target, chunks, source.size, parents=True,
                                              on_progress=progress)
    except FileOperationError as exc:
        raise UsageError(f"upload: {exc}") from None
    finally:
        source.close()
    cmds.say(f"[sandbox] uploaded {local} -> {target} ({human_size(sent)})")


async def _may_replace(cmds: Commands, name: str, remote: str, force: bool) -> bool:
    """Whether an existing local file may be replaced: only with --force AND a yes to a
    prompt the frontend shows (the notebook's text alone is not the user's consent)."""
    if not await asyncio.to_thread(local_exists, name):
        return False
    if not force:
        raise UsageError(f"download: {name!r} already exists; add --force to replace it "
                         "(you will be asked to confirm)")
    answer = await cmds.kernel.ask(f"Replace {name} in the notebook's directory with "
                                   f"{remote} from the sandbox? [y/N] ")
    if answer is None:
        raise UsageError(f"download: {name!r} already exists, and replacing it needs a "
                         "confirmation this frontend cannot ask for (batch runs have no "
                         "stdin); not replaced")
    if answer.strip().lower() not in ("y", "yes"):
        raise UsageError(f"download: {name!r} was not replaced (not confirmed)")
    return True


async def download(cmds: Commands, session: AsyncSession, remote: str, local: str | None,
                   force: bool) -> None:
    name = local or posixpath.basename(remote.rstrip("/"))
    await asyncio.to_thread(parts_of, name, "download")  # refuse early, before any transfer
    try:
        info = await session.files.stat(remote)
    except FileOperationError as exc:
        raise UsageError(f"download: {exc}") from None
    if info.type != "file":
        raise UsageError(f"download: {remote!r} is a {info.type}, not a regular file")
    cap = session.limits.sandbox_size
    if info.size > cap:
        raise UsageError(f"download: {remote!r} is {human_size(info.size)}, over the "
                         f"{human_size(cap)} transfer cap")
    replace = await _may_replace(cmds, name, remote, force)
    sink = await asyncio.to_thread(LocalSink, name, replace)
    try:
        progress = _Progress(cmds, "downloading", posixpath.basename(remote), info.size)
        try:
            size = await session.files.read_to(
                remote, lambda chunk: asyncio.to_thread(sink.write, chunk), cap, progress)
        except FileOperationError as exc:
            raise UsageError(f"download: {exc}") from None
        written = await asyncio.to_thread(sink.commit)
    finally:
        sink.abort()
    cmds.say(f"[sandbox] downloaded {remote} -> {written} ({human_size(size)})")
