"""Live installs inside the sandbox: the package directory, staged files, the installer.

The package directory is a tmpfs of its own, mounted exec but nosuid and owned by the
installer uid (998): cell code (uid 1000) may read and run what is there, never write it
(docs/architecture.md, "Packages"). The host streams each fetched file into its staging
folder with `stage`, written with the installer's file-system uid; `install` then starts
installer.py as that uid, with a fixed command line and a clean environment, so nothing
a cell set (variables, files in /sandbox or /tmp) reaches it.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
from collections.abc import Callable
from typing import NamedTuple

from . import procs
from .commands import Commands
from .files import FileOpError
from .frames import Frame
from .loop import Loop
from .measure import Meter
from .privilege import Identity, as_worker

DEFAULT_DIR = "/opt/sandbox-packages"
STAGING = ".staging"
#: Made at start as the installer, so that a worker's import system sees them from its start.
LAYOUT = ("python", "node", "node/node_modules", STAGING)
INSTALLER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "installer.py")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,254}")
_DIGEST = re.compile(r"(sha256:[0-9a-f]{64}|sha512:[0-9a-f]{128})")
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class PackageDir(NamedTuple):
    """Where packages go and who installs them (`ident.worker_uid` is the installer's)."""

    root: str
    ident: Identity
    known: bool = True  # False: the image names no installer uid, installs are refused


def package_dir(agent: Identity) -> PackageDir:
    """From the image's environment: SANDBOX_PACKAGES_DIR and SANDBOX_INSTALLER_UID."""
    root = os.environ.get("SANDBOX_PACKAGES_DIR") or DEFAULT_DIR
    if not agent.separated:
        return PackageDir(root, agent)
    value = os.environ.get("SANDBOX_INSTALLER_UID", "")
    uid = int(value) if value.isdigit() else agent.worker_uid
    known = value.isdigit() and uid not in (agent.agent_uid, agent.worker_uid)
    return PackageDir(root, Identity(agent.agent_uid, uid, uid), known)


def prepare(pdir: PackageDir) -> bool:
    """Make the layout as the installer (its effective ids, privilege.as_worker); False
    where the directory is not the installer's."""
    if not pdir.known:
        return False
    try:
        with as_worker(pdir.ident):
            for sub in LAYOUT:
                with contextlib.suppress(FileExistsError):
                    os.mkdir(os.path.join(pdir.root, sub), 0o700 if sub == STAGING else 0o755)
    except OSError:
        return False
    return True


def open_staged(pdir: PackageDir, name: str) -> int:
    """A new file in the staging folder, for the host's `stage` request."""
    if not _NAME.fullmatch(name):
        raise FileOpError("EINVAL", f"{name[:60]!r} is not a staged file name")
    try:
        with as_worker(pdir.ident):
            dfd = os.open(os.path.join(pdir.root, STAGING), _DIR_FLAGS)
            try:
                return os.open(name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW |
                               os.O_NONBLOCK | os.O_CLOEXEC, 0o600, dir_fd=dfd)
            finally:
                os.close(dfd)
    except OSError as exc:
        raise FileOpError("EACCES", f"the package directory {pdir.root} cannot take files "
                         f"({exc.strerror}); this engine gave the installer no directory "
                         "of its own, so live installs are not available") from None


def installer_env(pdir: PackageDir) -> dict[str, str]:
    """Everything the installer sees: fixed, never the cells' or the host's variables."""
    path = "/opt/venv/bin:/opt/node/bin:/usr/local/bin:/usr/bin:/bin"
    here = os.path.dirname(sys.executable)
    return {"PATH": f"{here}:{path}", "LANG": "C.UTF-8", "HOME": pdir.root,
            "TMPDIR": os.path.join(pdir.root, STAGING), "PIP_CONFIG_FILE": os.devnull,
            "PYTHONDONTWRITEBYTECODE": "1", "NODE_OPTIONS": ""}


class Installer:
    """The agent's installer runs: one-shot commands as the installer uid."""

    def __init__(self, loop: Loop, send: Callable[[Frame], None], meter: Meter, agent: Identity,
                 spare: Callable[[int], procs.Spare]) -> None:
        self.send = send
        self.pdir = package_dir(agent)
        self.ready = prepare(self.pdir)
        self.commands = Commands(loop, send, meter, self.pdir.ident, spare)

    def start(self, req: Frame) -> None:
        files = req["files"]
        bad = [n for n, d in files.items() if not _NAME.fullmatch(n) or not _DIGEST.fullmatch(d)]
        if not self.ready or bad:
            why = (f"{bad[0][:60]!r} is not a staged file with a sha256 or sha512 digest" if bad
                   else f"the package directory {self.pdir.root} is not the installer's on "
                   "this engine, so live installs are not available")
            self._refuse(req["id"], why)
            return
        argv = [sys.executable, "-I", "-S", INSTALLER, req["tool"], self.pdir.root,
                *(f"{name}={digest}" for name, digest in sorted(files.items()))]
        self.commands.start({"id": req["id"], "argv": argv, "env": {}, "stream": True,
                             "timeout": req["timeout"], "output_cap": req["output_cap"]},
                            installer_env(self.pdir), self.pdir.root)

    def _refuse(self, rid: int, text: str) -> None:
        self.send({"id": rid, "type": "exited", "exit_code": 2, "stdout": "", "stderr": text,
                   "duration_ms": 0.0, "timed_out": False, "interrupted": False,
                   "oom_killed": False, "dropped_bytes": 0})
