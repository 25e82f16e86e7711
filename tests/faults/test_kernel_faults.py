"""The sandbox dies, is restarted or shut down under a running cell or upload: the user is
told, nothing is left behind, and the next cell works in a fresh sandbox.

Covered in tests/kernel/test_lifecycle.py and not repeated: SIGKILL of the kernel (no
container after 10 s), ``docker pause`` between and during cells (reported within 15 s,
replaced, unpaused and removed in ``finally``), ``docker kill`` between cells, and a
restart of an idle kernel.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from kernel.conftest import KernelHandle, containers_of, docker, wait_until

pytestmark = pytest.mark.docker

Start = Callable[..., KernelHandle]


def exists(container_id: str) -> bool:
    return docker("inspect", container_id, check=False).returncode == 0


def wait_for_output(k: KernelHandle, marker: str, timeout: float = 30) -> None:
    """Read IOPub until a stream message containing ``marker`` arrives."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        m = k.kc.get_iopub_msg(timeout=timeout)
        if marker in str(m["content"].get("text", "")) + str(m["content"].get("data", "")):
            return
    raise AssertionError(f"{marker!r} never appeared")


def test_docker_kill_during_a_cell(start_kernel: Start) -> None:
    k = start_kernel()
    k.ok("doomed = 1")
    old = k.container().id
    killed: list[float] = []

    def kill_when_started(m: Any) -> None:
        if not killed and "started" in m.content.get("text", ""):
            killed.append(time.monotonic())
            docker("kill", old)

    r = k.execute("import time\nprint('started', flush=True)\ntime.sleep(60)",
                  on_msg=kill_when_started, timeout=60)
    assert killed, r
    detected = time.monotonic() - killed[0]
    print(f"\ndocker kill reported {detected:.2f} s later: {r.reply.get('evalue')!r}")
    assert detected < 15
    assert r.reply["ename"] == "SandboxError"
    assert re.fullmatch(r"the sandbox container (stopped \(\w+, exit code 137\)|was removed "
                        r"from outside); its state is lost", r.reply["evalue"]), r.reply
    assert wait_until(lambda: not exists(old), 10)
    r = k.execute("doomed")
    assert r.reply["ename"] == "NameError"
    assert "a fresh sandbox was started (variables and /sandbox files from before are gone)" \
        in r.text("stderr")
    assert k.value("6 * 7") == "42"
    assert k.container().id != old


def test_restart_during_a_running_cell(start_kernel: Start) -> None:
    k = start_kernel()
    k.ok("open('/sandbox/old.txt', 'w').write('old')")
    old_pid, old_cid = k.pid, k.container().id
    k.kc.execute("import time\nprint('running', flush=True)\ntime.sleep(60)")
    wait_for_output(k, "running")
    t0 = time.monotonic()
    k.restart()
    print(f"\nrestart under a running cell took {time.monotonic() - t0:.2f} s")
    assert k.pid != old_pid
    assert wait_until(lambda: not os.path.exists(f"/proc/{old_pid}"), 10)
    assert wait_until(lambda: not exists(old_cid), 10), "the old sandbox is still there"
    assert k.value("__import__('os').listdir('/sandbox')") == "[]"
    assert k.container().id != old_cid
    assert containers_of(old_pid) == []


def test_shutdown_during_an_upload(start_kernel: Start, tmp_path: Path) -> None:
    (tmp_path / "big.bin").write_bytes(os.urandom(120 * 2**20))
    k = start_kernel(cwd=tmp_path)
    k.ok("x = 1")
    cid, pid = k.container().id, k.pid
    k.kc.execute("%sandbox upload big.bin")
    wait_for_output(k, "uploading big.bin: ")  # the progress display: bytes are moving
    t0 = time.monotonic()
    k.km.shutdown_kernel(now=False)
    took = time.monotonic() - t0
    print(f"\nshutdown during an upload took {took:.2f} s")
    # jupyter_client kills a kernel that has not exited after shutdown_wait_time: quicker
    # than that means the kernel finished by itself (no deadlock between the two).
    assert took < k.km.shutdown_wait_time
    assert not k.km.is_alive()
    assert wait_until(lambda: not exists(cid), 10)
    assert containers_of(pid) == []
