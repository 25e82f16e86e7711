"""A Docker engine restart (live-restore off: every container dies with it) under two idle
kernels: a cell sent while the engine is down is refused at once with a clear message; after
the restart, the next cell says the sandbox was lost and runs in a fresh one, and the cell
after that is ordinary.

This restarts the engine every other test uses, so it is marked ``engine_restart`` (run
last by tests/conftest.py; deselect with ``-m "not engine_restart"``).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kernel.conftest import KernelHandle, containers_of, docker, wait_until

pytestmark = [pytest.mark.docker, pytest.mark.engine_restart]

Start = Callable[..., KernelHandle]
PIDFILE = "/var/run/docker.pid"
LOG = "/var/log/dockerd.log"


def _engine_up() -> bool:
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=10,
                              check=False).returncode == 0
    except subprocess.TimeoutExpired:
        return False


class Engine:
    """The local dockerd, stopped with SIGTERM and started again as it was started."""

    def __init__(self) -> None:
        if os.geteuid() != 0:
            pytest.skip("restarting the Docker engine needs root")
        if os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock") != \
                "unix:///var/run/docker.sock":
            pytest.skip("the Docker engine is not the local one")
        if shutil.which("systemctl") and subprocess.run(
                ["systemctl", "is-active", "--quiet", "docker"],
                capture_output=True, check=False).returncode == 0:
            pytest.skip("dockerd is managed by systemd here; this test restarts a plain one")
        try:
            self.pid = int(Path(PIDFILE).read_text().strip())
            self.argv = Path(f"/proc/{self.pid}/cmdline").read_bytes().split(b"\0")[:-1]
            environ = Path(f"/proc/{self.pid}/environ").read_bytes().split(b"\0")
        except (OSError, ValueError) as exc:
            pytest.skip(f"no local dockerd to restart ({exc})")
        if not self.argv or os.path.basename(self.argv[0]) != b"dockerd":
            pytest.skip(f"pid {self.pid} is not dockerd")
        self.env = dict(e.split(b"=", 1) for e in environ if b"=" in e)
        info = docker("info", "--format", "{{.LiveRestoreEnabled}}").stdout.strip()
        if info != "false":
            pytest.skip("live-restore is on: containers would survive the restart")

    def stop(self) -> float:
        t0 = time.monotonic()
        os.kill(self.pid, signal.SIGTERM)
        assert wait_until(lambda: not os.path.exists(f"/proc/{self.pid}"), 60, 0.2), \
            "dockerd did not stop"
        return time.monotonic() - t0

    def start(self) -> float:
        """Start dockerd in its own session (like ``setsid dockerd >LOG 2>&1 &``)."""
        t0 = time.monotonic()
        subprocess.run(["/bin/sh", "-c", f'setsid "$0" "$@" >>{LOG} 2>&1 </dev/null &',
                        *self.argv], env=self.env, cwd="/", check=True, timeout=30)
        assert wait_until(_engine_up, 60, 0.5), f"dockerd did not come back; see {LOG}"
        self.pid = int(Path(PIDFILE).read_text().strip())
        return time.monotonic() - t0


@pytest.fixture
def engine() -> Iterator[Engine]:
    e = Engine()
    try:
        yield e
    finally:
        if not _engine_up():  # whatever happened, leave an engine running
            e.start()


def test_engine_restart_is_reported_then_recovered(start_kernel: Start,
                                                    engine: Engine) -> None:
    idle, busy = start_kernel(), start_kernel()
    for k in (idle, busy):
        k.ok("state = 'before'\nopen('/sandbox/f', 'w').write('x')")
    old = {k.pid: k.container().id for k in (idle, busy)}

    stopped = engine.stop()
    assert not _engine_up()
    t0 = time.monotonic()
    r = busy.execute("state", timeout=60)
    refused_after = time.monotonic() - t0
    assert r.reply["ename"] == "SandboxError"
    assert re.match(r"the engine at unix://\S+ \(default socket\) stopped answering \(.+\); "
                    r"start one", r.reply["evalue"]), r.reply["evalue"]
    assert refused_after < 10

    started = engine.start()
    print(f"\ndockerd stopped in {stopped:.1f} s, a cell meanwhile was refused in "
          f"{refused_after:.2f} s, dockerd back in {started:.1f} s")
    for k, reason in ((idle, "the sandbox container was removed from outside; its state is "
                              "lost"),
                      (busy, "the engine at unix://")):
        r = k.execute("state", timeout=120)
        assert r.reply["ename"] == "NameError", r  # a fresh interpreter: the state is gone
        notice = r.text("stderr")
        assert notice.startswith(f"[sandbox] {reason}"), notice
        assert notice.endswith("a fresh sandbox was started (variables and /sandbox files "
                               "from before are gone)\n"), notice
        r = k.ok("import os\nprint(os.listdir('/sandbox'))")
        assert (r.text("stdout"), r.text("stderr")) == ("[]\n", "")
        assert [c.id for c in containers_of(k.pid)] != [old[k.pid]]
        assert not _exists_quietly(old[k.pid])


def _exists_quietly(container_id: str) -> Any:
    return _engine_up() and docker("inspect", container_id, check=False).returncode == 0
