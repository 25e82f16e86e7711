"""The early launcher reads the settings as the app does, and the app's reading decides.

`python -m sandbox_kernel` starts a sandbox before ipykernel is imported (kernel/early.py);
the app adopts it only when its own checked settings are the same (fast tier: the
launcher's engine half is replaced, no container starts).
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from traitlets.config import Config

from sandbox_kernel.kernel.config_check import check_settings
from sandbox_kernel.kernel.early import EarlyStart
from sandbox_kernel.kernel.launcher import Launcher


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[Launcher]:
    """Launchers whose start() was called, and closed ones marked; no engine is used."""
    seen: list[Launcher] = []

    def start(self: Launcher) -> None:  # a method: the launcher is its argument
        seen.append(self)

    monkeypatch.setattr(Launcher, "start", start)
    monkeypatch.setattr(Launcher, "prime", lambda self: None)
    monkeypatch.setattr(Launcher, "close", lambda self: setattr(self, "closed", True))
    monkeypatch.setenv("JUPYTER_CONFIG_DIR", str(tmp_path))
    monkeypatch.delenv("JUPYTER_CONFIG_PATH", raising=False)
    (tmp_path / "sandbox_kernel_config.py").write_text(
        'c.Sandbox.memory = "300m"\nc.Sandbox.timeout = "30s"\n')
    return seen


def app_view(memory: str = "300m", timeout: str = "30s", cpus: str = "0.5") -> Config:
    config = Config()
    config.Sandbox.memory = memory
    config.Sandbox.timeout = timeout
    config.Sandbox.cpus = cpus
    return config


def test_files_and_command_line_are_read_and_the_sandbox_started(
        started: list[Launcher]) -> None:
    early = EarlyStart(["-f", "kernel-1.json", "--Sandbox.cpus=0.5", "--debug"])
    assert early.launcher is not None and started == [early.launcher]
    assert early.launcher.limits.memory == 300 * 2**20
    assert early.launcher.limits.timeout == 30
    assert early.launcher.limits.cpus == 0.5


def test_the_app_adopts_it_when_its_settings_are_the_same(started: list[Launcher]) -> None:
    early = EarlyStart(["--Sandbox.cpus=0.5"])
    launcher = early.launcher
    checked = check_settings(app_view())
    assert early.take(checked) is launcher
    assert launcher is not None and not getattr(launcher, "closed", False)
    assert early.take(checked) is None  # taken once


def test_other_settings_close_it_and_the_app_starts_its_own(started: list[Launcher]) -> None:
    early = EarlyStart(["--Sandbox.cpus=0.5"])
    launcher = early.launcher
    assert early.take(check_settings(app_view(memory="512m"))) is None
    for thread in threading.enumerate():
        if thread.name == "sandbox-early-close":
            thread.join(5)
    assert getattr(launcher, "closed", False)


def test_a_broken_config_file_starts_nothing_early(started: list[Launcher],
                                                   tmp_path: Path) -> None:
    (tmp_path / "sandbox_kernel_config.py").write_text("raise RuntimeError('typo')\n")
    early = EarlyStart([])
    assert early.launcher is not None and early.launcher.problems
    assert "failed to run" in early.launcher.problems[0]
