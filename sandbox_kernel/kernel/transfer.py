"""Moving files between the notebook's directory and the sandbox, safely on the host side.

The host side is where a mistake would hurt: local paths must stay under the notebook's
directory, are walked with O_NOFOLLOW, must be regular files, and a download never
replaces an existing file without --force nor writes where a path from the container
points. Large transfers show a progress line that updates in place.
"""

from __future__ import annotations

import asyncio
import os
import posixpath
import stat
import uuid
from typing import TYPE_CHECKING

from ..errors import FileOperationError, UsageError
from ..sandbox.spec import human_size

if TYPE_CHECKING:
    from ..sandbox.session import Session
    from .commands import Commands

_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_PROGRESS_FROM = 1 << 20


def _parts(path: str, what: str) -> list[str]:
    if not path or "\0" in path or any(ord(c) < 32 for c in path):
        raise UsageError(f"{what}: invalid path {path[:60]!r}")
    if os.path.isabs(path):
        base = os.path.realpath(os.getcwd())
        full = os.path.normpath(path)
        if os.path.commonpath([base, full]) != base:
            raise UsageError(f"{what}: {path!r} is outside the notebook's directory")
        path = os.path.relpath(full, base)
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if not parts or ".." in parts:
        raise UsageError(f"{what}: {path!r} must name a file under the notebook's directory "
                         "(no '..')")
    return parts


class _Dir:
    """An fd walk from the notebook's directory to the parent of the last component."""

    def __init__(self, parts: list[str], what: str) -> None:
        self.fds = [os.open(".", _DIR)]
        try:
            for name in parts[:-1]:
                self.fds.append(os.open(name, _DIR, dir_fd=self.fds[-1]))
        except OSError as exc:
            self.close()
            raise UsageError(f"{what}: {'/'.join(parts)}: {exc.strerror} (links are not "
                             "followed)") from None

    @property
    def fd(self) -> int:
        return self.fds[-1]

    def close(self) -> None:
        for fd in self.fds:
            os.close(fd)
        self.fds = []


class _Progress:
    def __init__(self, cmds: Commands, verb: str, name: str, total: int) -> None:
        self.cmds, self.verb, self.name, self.total = cmds, verb, name, total
        self.id = f"sandbox-transfer-{uuid.uuid4().hex[:8]}"
        self.shown = False
        self.last = -1

    def __call__(self, done: int) -> None:
        if self.total < _PROGRESS_FROM:
            return
        pct = int(100 * done / self.total) if self.total else 100
        if pct == self.last:
            return
        self.last = pct
        text = f"{self.verb} {self.name}: {pct}% of {human_size(self.total)}"
        self.cmds.show({"text/plain": text}, self.id, update=self.shown)
        self.shown = True


def read_local(local: str, cap: int) -> tuple[bytes, str]:
    """Read a regular file under the notebook's directory without following links."""
    parts = _parts(local, "upload")
    d = _Dir(parts, "upload")
    try:
        try:
            fd = os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC,
                         dir_fd=d.fd)
        except FileNotFoundError:
            raise UsageError(f"upload: {local!r} does not exist in the notebook's directory") \
                from None
        except OSError as exc:
            raise UsageError(f"upload: {local!r}: {exc.strerror} (links are not followed)") \
                from None
    finally:
        d.close()
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise UsageError(f"upload: {local!r} is not a regular file")
        if st.st_size > cap:
            raise UsageError(f"upload: {local!r} is {human_size(st.st_size)}, over the "
                             f"{human_size(cap)} transfer cap")
        chunks = []
        while True:
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                break
            chunks.append(chunk)
        data = b"".join(chunks)
        if len(data) > cap:
            raise UsageError(f"upload: {local!r} grew past the {human_size(cap)} cap")
        return data, parts[-1]
    finally:
        os.close(fd)


def write_local(local: str, data: bytes, force: bool) -> str:
    """Create (or with force, atomically replace) a file under the notebook's directory."""
    parts = _parts(local, "download")
    d = _Dir(parts, "download")
    name = parts[-1]
    try:
        try:
            existing = os.stat(name, dir_fd=d.fd, follow_symlinks=False)
        except FileNotFoundError:
            existing = None
        if existing is not None and not force:
            raise UsageError(f"download: {local!r} already exists; add --force to replace it")
        if existing is not None and not stat.S_ISREG(existing.st_mode):
            raise UsageError(f"download: {local!r} exists and is not a regular file")
        tmp = f".{name}.sandbox-{uuid.uuid4().hex[:8]}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                     0o644, dir_fd=d.fd)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
        finally:
            os.close(fd)
        try:
            if force:
                os.replace(tmp, name, src_dir_fd=d.fd, dst_dir_fd=d.fd)
            else:
                os.link(tmp, name, src_dir_fd=d.fd, dst_dir_fd=d.fd, follow_symlinks=False)
        except FileExistsError:
            raise UsageError(f"download: {local!r} appeared meanwhile; not replaced") from None
        finally:
            if not force:
                os.unlink(tmp, dir_fd=d.fd)
    finally:
        d.close()
    return "/".join(parts)


async def upload(cmds: Commands, session: Session, local: str, remote: str | None) -> None:
    cap = session.limits.sandbox_size
    data, name = await asyncio.to_thread(read_local, local, cap)
    target = remote or name
    progress = _Progress(cmds, "uploading", name, len(data))
    try:
        await asyncio.to_thread(session.write_file, target, data, parents=True,
                                on_progress=progress)
    except FileOperationError as exc:
        raise UsageError(f"upload: {exc}") from None
    cmds.say(f"[sandbox] uploaded {local} -> {target} ({human_size(len(data))})")


async def download(cmds: Commands, session: Session, remote: str, local: str | None,
                   force: bool) -> None:
    try:
        info = await asyncio.to_thread(session.stat, remote)
    except FileOperationError as exc:
        raise UsageError(f"download: {exc}") from None
    if info.type != "file":
        raise UsageError(f"download: {remote!r} is a {info.type}, not a regular file")
    cap = session.limits.sandbox_size
    if info.size > cap:
        raise UsageError(f"download: {remote!r} is {human_size(info.size)}, over the "
                         f"{human_size(cap)} transfer cap")
    name = local or posixpath.basename(remote.rstrip("/"))
    progress = _Progress(cmds, "downloading", posixpath.basename(remote), info.size)
    try:
        data = await asyncio.to_thread(session.read_file, remote, cap, progress)
    except FileOperationError as exc:
        raise UsageError(f"download: {exc}") from None
    written = await asyncio.to_thread(write_local, name, data, force)
    cmds.say(f"[sandbox] downloaded {remote} -> {written} ({human_size(len(data))})")
