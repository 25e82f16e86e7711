"""`jupyter console` in a real terminal (tmux), typed into as a new user would.

A multi-line `%%node` cell must wait for its blank line (is_complete answers "incomplete"
for a cell magic, as ipykernel does) and run as one Node cell; `exit` must make the console
leave (ipykernel's ask_exit payload), which shuts its kernel and sandbox down.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from .conftest import containers_of, wait_until

pytestmark = pytest.mark.docker


def _ensure_tmux() -> str:
    """tmux, installed with apt-get when missing; skipped only where apt cannot run."""
    found = shutil.which("tmux")
    if found:
        return found
    apt = shutil.which("apt-get")
    if apt is None or os.geteuid() != 0:
        pytest.skip("tmux is missing and apt-get cannot install it here (no apt-get or not "
                    "root)")
    subprocess.run([apt, "install", "-y", "-q", "tmux"], capture_output=True, timeout=600,
                   check=False, env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
    found = shutil.which("tmux")
    if not found:
        pytest.skip("tmux is missing and 'apt-get install tmux' failed")
    return found


class Terminal:
    """One tmux server of our own (its own socket) running one command in a pane."""

    def __init__(self, tmux: str, socket: str) -> None:
        self.base = [tmux, "-L", socket]

    def tmux(self, *args: str) -> str:
        return subprocess.run([*self.base, *args], capture_output=True, text=True,
                              timeout=30, check=True).stdout

    def start(self, command: list[str], env: dict[str, str]) -> None:
        shell_line = " ".join(f"'{part}'" for part in command)
        subprocess.run([*self.base, "new-session", "-d", "-s", "t", "-x", "160", "-y", "50",
                        f"exec {shell_line}"], env=env, check=True, timeout=30)
        self.tmux("set-option", "-t", "t", "remain-on-exit", "on")

    def type(self, text: str) -> None:
        if text:  # a trailing ';' would end the tmux command: escape it
            self.tmux("send-keys", "-t", "t", "-l", text[:-1] + "\\;" if text.endswith(";")
                      else text)
        self.tmux("send-keys", "-t", "t", "Enter")

    def screen(self) -> str:
        return self.tmux("capture-pane", "-p", "-t", "t", "-S", "-200")

    def pane(self, field: str) -> str:
        return self.tmux("display-message", "-p", "-t", "t", f"#{{{field}}}").strip()

    def close(self) -> None:
        subprocess.run([*self.base, "kill-server"], capture_output=True, timeout=30,
                       check=False)


@pytest.fixture
def terminal() -> Iterator[Terminal]:
    term = Terminal(_ensure_tmux(), f"sandbox-kernel-test-{os.getpid()}")
    try:
        yield term
    finally:
        term.close()


def _console() -> list[str]:
    script = Path(sys.executable).with_name("jupyter-console")
    if not script.exists():
        pytest.skip("jupyter-console is not installed (pip install -e '.[test]')")
    return [str(script), "--kernel", "sandbox"]


def test_console_runs_a_multiline_node_cell_and_leaves_on_exit(
        terminal: Terminal, tmp_path: Path) -> None:
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(tmp_path / "config"),
           "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"), "IPYTHONDIR": str(tmp_path / "ip"),
           "TERM": "xterm-256color"}
    terminal.start(_console(), env)
    assert wait_until(lambda: "In [1]" in terminal.screen(), 90), terminal.screen()
    console = psutil.Process(int(terminal.pane("pane_pid")))
    kernels = [p.pid for p in console.children(recursive=True)
               if "sandbox_kernel" in " ".join(p.cmdline())]
    assert len(kernels) == 1, kernels

    # As in ipykernel, a cell magic ends at a blank line: the text ends with "\n\n".
    for line in ("%%node", "const a = 6 * 7;", "console.log('answer', a)", "", ""):
        terminal.type(line)
    assert wait_until(lambda: "answer 42" in terminal.screen(), 90), terminal.screen()
    assert wait_until(lambda: "In [2]" in terminal.screen(), 30), terminal.screen()
    screen = terminal.screen()
    assert "SyntaxError" not in screen and "Error" not in screen, screen

    terminal.type("exit")
    assert wait_until(lambda: terminal.pane("pane_dead") == "1", 60), terminal.screen()
    assert terminal.pane("pane_dead_status") == "0", terminal.screen()
    assert wait_until(lambda: not psutil.pid_exists(kernels[0]), 30)
    assert wait_until(lambda: not containers_of(kernels[0]), 30)
