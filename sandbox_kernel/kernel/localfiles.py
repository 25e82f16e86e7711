"""The notebook directory's side of a transfer: where files may be read and written.

A notebook's text is not the user's consent, so a path it names is refused if any part
starts with '.' (`.git/config`, `.ssh/id_rsa`, `.ipython/profile_default/startup/`), if
it lies inside a Jupyter or IPython config, data or runtime directory or the host
Python's prefix and import path (wherever those are, also below the notebook directory),
or, for a download, if its name would shadow a module of the host's Python for programs
started in this directory (`python -m` puts the directory first on sys.path). Paths are
walked with O_NOFOLLOW from the notebook directory and must be regular files.

Both sides are streaming-friendly: a LocalSource yields chunks up to the size the file
had when it was opened (a file that grows meanwhile is cut there), and a LocalSink is
opened, written chunk by chunk, then committed (linked into place, or atomically
replacing a file the user confirmed) or aborted (nothing left behind).
"""

from __future__ import annotations

import os
import pkgutil
import site
import stat
import sys
import uuid
from collections.abc import Iterator

from ..errors import UsageError
from ..sandbox.units import human_size

_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_CODE_SUFFIXES = (".py", ".pyc", ".pyw", ".pyd", ".so", ".pth")
CHUNK = 1 << 20


def parts_of(path: str, what: str) -> list[str]:
    """The components of a path under the notebook's directory, checked."""
    if not path or "\0" in path or any(ord(c) < 32 for c in path):
        raise UsageError(f"{what}: invalid path {path[:60]!r}")
    base = os.path.realpath(os.getcwd())
    if os.path.isabs(path):
        full = os.path.normpath(path)
        if os.path.commonpath([base, full]) != base:
            raise UsageError(f"{what}: {path!r} is outside the notebook's directory")
        path = os.path.relpath(full, base)
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if not parts or ".." in parts:
        raise UsageError(f"{what}: {path!r} must name a file under the notebook's directory "
                         "(no '..')")
    hidden = next((p for p in parts if p.startswith(".")), None)
    if hidden is not None:
        raise UsageError(f"{what}: {path!r} is refused: '{hidden}' is hidden (a name starting "
                         "with '.'); hidden files and directories never move")
    full = os.path.join(base, *parts)
    for guarded in _guarded_dirs(base):
        if full == guarded or full.startswith(guarded.rstrip("/") + "/"):
            raise UsageError(f"{what}: {path!r} is refused: it is inside {guarded}, a "
                             "Jupyter, IPython or Python directory of the host")
    return parts


def _guarded_dirs(base: str) -> list[str]:
    """Jupyter's and IPython's config, data and runtime directories, the host Python's
    prefixes, site-packages and import path (but not the notebook directory itself)."""
    from IPython.paths import get_ipython_dir
    from jupyter_core import paths

    dirs = [paths.jupyter_config_dir(), paths.jupyter_data_dir(), paths.jupyter_runtime_dir(),
            *paths.jupyter_config_path(), *paths.jupyter_path(), get_ipython_dir(),
            sys.prefix, sys.exec_prefix, sys.base_prefix, *site.getsitepackages(),
            site.getusersitepackages(), *sys.path]
    real = {os.path.realpath(d) for d in dirs if d}
    return sorted(d for d in real if d not in (base, "/"))


def check_not_code(parts: list[str], what: str) -> None:
    """Refuse Python code whose top-level name the host's Python would import instead of
    its own module (`json.py`, `ipykernel_launcher.py`, `test/__init__.py`)."""
    if not parts[-1].endswith(_CODE_SUFFIXES):
        return
    stem = parts[0].split(".", 1)[0]
    base = os.path.realpath(os.getcwd())
    names = set(sys.stdlib_module_names)
    for module in pkgutil.iter_modules():
        finder_path = getattr(module.module_finder, "path", None)
        if finder_path is None or os.path.realpath(finder_path) != base:
            names.add(module.name)
    if stem in names:
        raise UsageError(f"{what}: {'/'.join(parts)!r} is refused: it would shadow the host "
                         f"Python's module {stem!r} for programs started in this directory")


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


def local_exists(local: str) -> bool:
    """Whether the download target exists (as anything, links included)."""
    parts = parts_of(local, "download")
    d = _Dir(parts, "download")
    try:
        os.stat(parts[-1], dir_fd=d.fd, follow_symlinks=False)
        return True
    except FileNotFoundError:
        return False
    finally:
        d.close()


class LocalSource:
    """A regular file under the notebook's directory, opened for an upload."""

    def __init__(self, local: str, cap: int) -> None:
        self.parts = parts_of(local, "upload")
        self.name = self.parts[-1]
        d = _Dir(self.parts, "upload")
        try:
            self.fd = os.open(self.name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK |
                              os.O_CLOEXEC, dir_fd=d.fd)
        except FileNotFoundError:
            raise UsageError(f"upload: {local!r} does not exist in the notebook's "
                             "directory") from None
        except OSError as exc:
            raise UsageError(f"upload: {local!r}: {exc.strerror} (links are not "
                             "followed)") from None
        finally:
            d.close()
        st = os.fstat(self.fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size > cap:
            os.close(self.fd)
            raise UsageError(f"upload: {local!r} is not a regular file" if not stat.S_ISREG(
                st.st_mode) else f"upload: {local!r} is {human_size(st.st_size)}, over the "
                f"{human_size(cap)} transfer cap")
        self.size = st.st_size

    def chunks(self, step: int = CHUNK) -> Iterator[bytes]:
        """The file's bytes up to the size it had when opened."""
        left = self.size
        while left > 0:
            chunk = os.read(self.fd, min(step, left))
            if not chunk:
                return
            left -= len(chunk)
            yield chunk

    def read_all(self) -> bytes:
        return b"".join(self.chunks())

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class LocalSink:
    """A new file under the notebook's directory: write chunks, then commit or abort."""

    def __init__(self, local: str, replace: bool = False) -> None:
        self.parts = parts_of(local, "download")
        check_not_code(self.parts, "download")
        self.local, self.replace = local, replace
        self.dir = _Dir(self.parts, "download")
        self.tmp = f".{self.parts[-1][:200]}.sandbox-{uuid.uuid4().hex[:8]}"
        try:
            self.fd = os.open(self.tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW |
                              os.O_CLOEXEC, 0o644, dir_fd=self.dir.fd)
        except OSError as exc:
            self.dir.close()
            raise UsageError(f"download: {local!r}: {exc.strerror}") from None

    def write(self, chunk: bytes) -> None:
        view = memoryview(chunk)
        while view:
            view = view[os.write(self.fd, view):]

    def commit(self) -> str:
        """Put the file in place: never over an existing one unless `replace` was given."""
        name, fd = self.parts[-1], self.dir.fd
        os.close(self.fd)
        self.fd = -1
        try:
            existing = os.stat(name, dir_fd=fd, follow_symlinks=False)
        except FileNotFoundError:
            existing = None
        try:
            if existing is not None and not (self.replace and stat.S_ISREG(existing.st_mode)):
                raise UsageError(f"download: {self.local!r} exists (it appeared meanwhile, or "
                                 "is not a regular file); not replaced")
            if existing is not None:
                os.replace(self.tmp, name, src_dir_fd=fd, dst_dir_fd=fd)
            else:
                os.link(self.tmp, name, src_dir_fd=fd, dst_dir_fd=fd, follow_symlinks=False)
        except FileExistsError:
            raise UsageError(f"download: {self.local!r} appeared meanwhile; not replaced") \
                from None
        finally:
            self.abort()
        return "/".join(self.parts)

    def abort(self) -> None:
        """Remove the temporary file (after a commit, its extra link)."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        if self.dir.fds:
            try:
                os.unlink(self.tmp, dir_fd=self.dir.fd)
            except FileNotFoundError:
                pass
            self.dir.close()
