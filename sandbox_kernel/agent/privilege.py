"""The agent's separation from cell code: its own uid, three capabilities, not dumpable.

The container starts the agent as root with only CAP_SETUID, CAP_SETGID, CAP_KILL,
CAP_SETPCAP (to empty the bounding set that every process it starts inherits) and
CAP_CHOWN (to give /sandbox to the worker and the package directory to the installer
where the engine cannot, Podman).
It moves to the agent uid keeping those three (to start workers as the worker uid and to
signal them), and turns itself non-dumpable, so cell code can neither signal it, trace
it, read its memory nor open its pipes through /proc (docs/architecture.md, "Integrity").
It touches files as the worker (as_worker), so the files it moves are the user's own.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
from collections.abc import Iterator
from typing import NamedTuple

PR_SET_DUMPABLE = 4
PR_SET_KEEPCAPS = 8
PR_CAPBSET_DROP = 24
PR_SET_CHILD_SUBREAPER = 36
_CAP_VERSION_3 = 0x20080522
CAP_KILL, CAP_SETGID, CAP_SETUID = 5, 6, 7
WORKDIR = "/sandbox"
AGENT_CAPS = (1 << CAP_KILL) | (1 << CAP_SETGID) | (1 << CAP_SETUID)


class _Header(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _Data(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                ("inheritable", ctypes.c_uint32)]


class Identity(NamedTuple):
    """Who the agent is and who cell code runs as; equal uids mean no separation."""

    agent_uid: int
    worker_uid: int
    worker_gid: int

    @property
    def separated(self) -> bool:
        return self.agent_uid != self.worker_uid


def _libc() -> ctypes.CDLL:
    """libc through the interpreter's own symbols (dlopen(NULL)). ctypes.util.find_library
    runs ldconfig on every call, and become_agent makes some 45 before the first worker
    starts: that was about 75 ms of a cold kernel's start."""
    return ctypes.CDLL(None, use_errno=True)


def prctl(option: int, arg: int = 0) -> None:
    if _libc().prctl(option, arg, 0, 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"prctl({option}): {os.strerror(err)}")


def _capset(mask: int) -> None:
    header = _Header(_CAP_VERSION_3, 0)
    data = (_Data * 2)()
    data[0].effective = data[0].permitted = mask
    if _libc().capset(ctypes.byref(header), data) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"capset: {os.strerror(err)}")


def _env_int(name: str) -> int | None:
    try:
        return int(os.environ[name])
    except (KeyError, ValueError):
        return None


def become_agent() -> Identity:
    """Drop to the agent uid (if configured and running as root); return the identities.

    SANDBOX_AGENT_UID and SANDBOX_WORKER_UID come from the image. Without them (the local
    test backend), agent and workers share the caller's uid and nothing changes.
    """
    agent_uid, worker_uid = _env_int("SANDBOX_AGENT_UID"), _env_int("SANDBOX_WORKER_UID")
    if agent_uid is None or worker_uid is None or os.getuid() != 0:
        uid = os.getuid()
        return Identity(uid, uid, os.getgid())
    _own_workdir(worker_uid)
    _own_packages(_env_int("SANDBOX_INSTALLER_UID"))
    # An empty bounding set for everything the agent starts: no capability can ever be
    # gained there, whatever binary runs. Dropping needs CAP_SETPCAP, held only until here.
    for cap in range(64):
        try:
            prctl(PR_CAPBSET_DROP, cap)
        except OSError:
            break  # past the last capability this kernel knows
    prctl(PR_SET_KEEPCAPS, 1)
    os.setgroups([])
    os.setresgid(agent_uid, agent_uid, agent_uid)
    os.setresuid(agent_uid, agent_uid, agent_uid)
    _capset(AGENT_CAPS)
    prctl(PR_SET_KEEPCAPS, 0)
    prctl(PR_SET_DUMPABLE, 0)
    return Identity(agent_uid, worker_uid, worker_uid)


@contextlib.contextmanager
def as_worker(ident: Identity) -> Iterator[None]:
    """Touch files (and start processes) with the worker's effective ids, then back.

    /sandbox is the worker's (mode 0700): files the agent moves for the host are the
    user's own, and nothing more is reachable. Real and saved ids stay the agent's, so
    cell code still cannot signal or trace the agent meanwhile. (setfsuid would do, but
    gVisor ignores it.) The agent is single-threaded: nothing else runs as the worker.
    """
    if not ident.separated:
        yield
        return
    os.setresgid(-1, ident.worker_gid, -1)
    os.setresuid(-1, ident.worker_uid, -1)
    try:
        yield
    finally:
        os.setresuid(-1, ident.agent_uid, -1)
        os.setresgid(-1, ident.agent_uid, -1)


def _own_workdir(uid: int) -> None:
    """/sandbox belongs to the worker. Docker mounts it so (uid=); Podman cannot, and mounts
    it as the container's user, root: CAP_CHOWN is held for this one call."""
    try:
        st = os.stat(WORKDIR)
        if st.st_uid != uid:
            os.chown(WORKDIR, uid, uid)
            os.chmod(WORKDIR, 0o700)
    except OSError:
        pass


def _own_packages(uid: int | None) -> None:
    """The live-install tmpfs belongs to the installer (docs/architecture.md, "Packages"):
    Docker mounts it so; on Podman, CAP_CHOWN gives it over here, as /sandbox above."""
    path = os.environ.get("SANDBOX_PACKAGES_DIR", "")
    try:
        if uid is not None and path.startswith("/") and os.stat(path).st_uid != uid:
            os.chown(path, uid, uid)
            os.chmod(path, 0o755)
    except OSError:
        pass


def become_reaper() -> None:
    """Orphans of cell code reparent to the agent, so every process stays its descendant."""
    try:
        prctl(PR_SET_CHILD_SUBREAPER, 1)
    except OSError:
        pass


def prefer_oom() -> None:
    """For a worker: the OOM killer takes it before the agent (set while still writable)."""
    try:
        with open("/proc/self/oom_score_adj", "w") as f:
            f.write("1000")
    except OSError:
        pass


def not_dumpable() -> None:
    """For a worker: other processes of the same uid cannot trace it or open its fds."""
    try:
        prctl(PR_SET_DUMPABLE, 0)
    except OSError:
        pass
