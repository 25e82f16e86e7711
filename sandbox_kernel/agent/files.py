"""File operations confined to the sandbox's writable roots, never following symlinks.

Every path is walked one component at a time from an allowed root with ``O_NOFOLLOW`` and
``dir_fd``, so a symlink, a ``..`` or a swapped directory cannot lead outside the roots.
Opens use ``O_NONBLOCK`` and content is read only from regular files, so a FIFO or a
device can never hang the agent.
"""

from __future__ import annotations

import errno
import os
import stat
from typing import NamedTuple

MAX_LIST_ENTRIES = 10_000
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class FileOpError(Exception):
    """A refused or failed file operation, with an errno-style code for the host."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _from_oserror(exc: OSError, path: str) -> FileOpError:
    code = errno.errorcode.get(exc.errno or 0, "EIO")
    if exc.errno == errno.ELOOP:
        return FileOpError("ELOOP", f"{path}: is a symbolic link; links are not followed")
    if exc.errno == errno.ENOTDIR:
        return FileOpError(code, f"{path}: a parent is not a directory (or is a link)")
    return FileOpError(code, f"{path}: {os.strerror(exc.errno or errno.EIO)}")


def _mapping() -> dict[str, str]:
    """Where each root really is: itself, or what the host set (the local backend's
    SANDBOX_AGENT_ROOTS="/sandbox=/real/dir:/tmp=/other/dir")."""
    pairs = (item.partition("=") for item in os.environ.get("SANDBOX_AGENT_ROOTS", "").split(":"))
    found = {v: r for v, _, r in pairs if v.startswith("/") and r.startswith("/")}
    return found or {"/sandbox": "/sandbox", "/tmp": "/tmp"}


def allowed_roots() -> tuple[str, ...]:
    """The writable roots as paths inside the sandbox: /sandbox and /tmp."""
    return tuple(_mapping())


def real_dir(root: str) -> str:
    return _mapping().get(root, root)


class Resolved(NamedTuple):
    """A path split into its allowed root and the components below it."""

    display: str
    root: str
    parts: tuple[str, ...]


def resolve(path: str, roots: tuple[str, ...] | None = None) -> Resolved:
    """Check a user path lexically: relative paths live under /sandbox; no '..' anywhere."""
    roots = roots or allowed_roots()
    if not isinstance(path, str) or path == "":
        raise FileOpError("EINVAL", "a path is required")
    if "\0" in path:
        raise FileOpError("EINVAL", "path contains a NUL byte")
    if len(path.encode("utf-8", "surrogateescape")) > 4096:
        raise FileOpError("ENAMETOOLONG", "path is longer than 4096 bytes")
    full = path if path.startswith("/") else f"{roots[0]}/{path}"
    parts = [p for p in full.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise FileOpError("EACCES", f"{path}: '..' is not allowed in sandbox paths")
    for root in roots:
        rparts = [p for p in root.split("/") if p]
        if parts[: len(rparts)] == rparts:
            rest = tuple(parts[len(rparts) :])
            return Resolved("/" + "/".join(parts), root, rest)
    raise FileOpError(
        "EACCES", f"{path}: outside the sandbox; only {' and '.join(roots)} are reachable"
    )


class _Walk:
    """Open directory fds down to the parent of the final component."""

    def __init__(self, r: Resolved, create_parents: bool = False) -> None:
        self.r = r
        self.fds: list[int] = []
        try:
            self.fds.append(os.open(real_dir(r.root), _DIR_FLAGS))
            for name in r.parts[:-1]:
                if create_parents:
                    try:
                        os.mkdir(name, 0o755, dir_fd=self.fds[-1])
                    except FileExistsError:
                        pass
                self.fds.append(os.open(name, _DIR_FLAGS, dir_fd=self.fds[-1]))
        except OSError as exc:
            self.close()
            raise _from_oserror(exc, r.display) from None

    @property
    def dir_fd(self) -> int:
        return self.fds[-1]

    @property
    def name(self) -> str | None:
        return self.r.parts[-1] if self.r.parts else None

    def close(self) -> None:
        for fd in self.fds:
            os.close(fd)
        self.fds = []

    def __enter__(self) -> _Walk:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _kind(mode: int) -> str:
    if stat.S_ISREG(mode):
        return "file"
    if stat.S_ISDIR(mode):
        return "dir"
    if stat.S_ISLNK(mode):
        return "symlink"
    return "other"


def _info(name: str, st: os.stat_result) -> dict[str, object]:
    return {
        "name": name,
        "type": _kind(st.st_mode),
        "size": st.st_size,
        "mtime": st.st_mtime,
        "mode": stat.S_IMODE(st.st_mode),
    }


def stat_path(path: str) -> dict[str, object]:
    r = resolve(path)
    with _Walk(r) as w:
        try:
            if w.name is None:
                return _info(r.root, os.stat(w.dir_fd))
            return _info(w.name, os.stat(w.name, dir_fd=w.dir_fd, follow_symlinks=False))
        except OSError as exc:
            raise _from_oserror(exc, r.display) from None


def open_regular(path: str, max_bytes: int) -> tuple[int, int]:
    """Open a regular file for reading; return (fd, size). Refuse links, FIFOs, devices."""
    r = resolve(path)
    if not r.parts:
        raise FileOpError("EISDIR", f"{r.display}: is a directory")
    with _Walk(r) as w:
        try:
            fd = os.open(
                w.name or "",
                os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC,
                dir_fd=w.dir_fd,
            )
        except OSError as exc:
            raise _from_oserror(exc, r.display) from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        kind = "a directory" if stat.S_ISDIR(st.st_mode) else "not a regular file"
        raise FileOpError("EINVAL", f"{r.display}: is {kind}")
    if st.st_size > max_bytes:
        os.close(fd)
        raise FileOpError(
            "EFBIG", f"{r.display}: {st.st_size} bytes is over the {max_bytes}-byte transfer cap"
        )
    return fd, st.st_size


def open_for_write(path: str, append: bool, parents: bool) -> int:
    """Open (creating, mode 0644) a regular file for writing; truncate unless appending."""
    r = resolve(path)
    if not r.parts:
        raise FileOpError("EISDIR", f"{r.display}: is a directory")
    flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    flags |= os.O_APPEND if append else os.O_TRUNC
    with _Walk(r, create_parents=parents) as w:
        try:
            fd = os.open(w.name or "", flags, 0o644, dir_fd=w.dir_fd)
        except OSError as exc:
            raise _from_oserror(exc, r.display) from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise FileOpError("EINVAL", f"{r.display}: is not a regular file")
    return fd


def list_dir(path: str, limit: int = MAX_LIST_ENTRIES) -> tuple[list[dict[str, object]], bool]:
    """Entries of a directory (not followed through links), sorted, at most `limit`."""
    r = resolve(path)
    with _Walk(r) as w:
        try:
            fd = (
                os.open(w.name, _DIR_FLAGS, dir_fd=w.dir_fd)
                if w.name is not None
                else os.dup(w.dir_fd)
            )
        except OSError as exc:
            raise _from_oserror(exc, r.display) from None
    entries: list[dict[str, object]] = []
    truncated = False
    try:
        with os.scandir(fd) as it:
            for entry in it:
                if len(entries) >= limit:
                    truncated = True
                    break
                try:
                    entries.append(_info(entry.name, entry.stat(follow_symlinks=False)))
                except OSError:
                    continue
    finally:
        os.close(fd)
    entries.sort(key=lambda e: str(e["name"]))
    return entries, truncated


def delete(path: str, recursive: bool) -> None:
    r = resolve(path)
    if not r.parts:
        raise FileOpError("EACCES", f"{r.display}: refusing to delete a sandbox root")
    with _Walk(r) as w:
        name = w.name or ""
        try:
            st = os.stat(name, dir_fd=w.dir_fd, follow_symlinks=False)
            if stat.S_ISDIR(st.st_mode):
                if recursive:
                    import shutil  # here: it (with bz2, lzma, fnmatch) is no idle agent's memory

                    shutil.rmtree(name, dir_fd=w.dir_fd)
                else:
                    os.rmdir(name, dir_fd=w.dir_fd)
            else:
                os.unlink(name, dir_fd=w.dir_fd)
        except OSError as exc:
            if exc.errno == errno.ENOTEMPTY:
                raise FileOpError(
                    "ENOTEMPTY", f"{r.display}: directory not empty (use recursive delete)"
                ) from None
            raise _from_oserror(exc, r.display) from None


def mkdir(path: str, parents: bool) -> None:
    r = resolve(path)
    if not r.parts:
        return
    with _Walk(r, create_parents=parents) as w:
        try:
            os.mkdir(w.name or "", 0o755, dir_fd=w.dir_fd)
        except FileExistsError:
            if not parents:
                raise FileOpError("EEXIST", f"{r.display}: already exists") from None
        except OSError as exc:
            raise _from_oserror(exc, r.display) from None
