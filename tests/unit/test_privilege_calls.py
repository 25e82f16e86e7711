"""The agent's libc calls at start-up: no helper process, whatever the number of calls."""

from __future__ import annotations

import os
import subprocess

import pytest

from sandbox_kernel.agent import privilege

PR_GET_DUMPABLE = 3


def test_libc_handle_starts_no_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """become_agent makes some 45 prctl calls before the first worker: with
    ctypes.util.find_library each one ran ldconfig (about 75 ms of a cold start)."""
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"a process was started: {args!r}")

    monkeypatch.setattr(subprocess, "Popen", refuse)
    monkeypatch.setattr(os, "posix_spawn", refuse)
    libc = privilege._libc()
    assert libc.getpid() == os.getpid()
    assert libc.prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) in (0, 1, 2)


def test_prctl_reports_errno() -> None:
    """A refused option is an OSError naming it, with the kernel's errno."""
    with pytest.raises(OSError, match=r"prctl\(9999\)") as info:
        privilege.prctl(9999)
    assert info.value.errno != 0
