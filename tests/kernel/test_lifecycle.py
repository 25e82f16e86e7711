"""The sandbox's life with its kernel: shutdown, SIGKILL, restart, idle reclaim, outside
interference (kill, pause), and where configuration may come from. Each test has its own
kernel(s)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from .conftest import GONE_WITHIN_S, KernelHandle, containers_of, docker, wait_until

pytestmark = pytest.mark.docker

Start = Callable[..., KernelHandle]


def _exists(container_id: str) -> bool:
    return docker("inspect", container_id, check=False).returncode == 0


def test_no_container_after_shutdown(start_kernel: Start) -> None:
    k = start_kernel()
    k.ok("x = 1")
    cid = k.container().id
    assert _exists(cid)
    pid = k.pid
    k.close()
    assert wait_until(lambda: not containers_of(pid), 5), containers_of(pid)
    assert not _exists(cid)


def test_the_kernel_exits_by_itself_after_a_shutdown_request(start_kernel: Start) -> None:
    """jupyter_client kills a kernel that is still there 5 s after its shutdown reply; this
    one used to be, about one shutdown in three (its control thread waited on IOPub)."""
    for _ in range(4):
        k = start_kernel()
        k.ok("pass")
        process = k.km.provisioner.process  # type: ignore[union-attr]
        k.km.request_shutdown()
        assert wait_until(lambda p=process: p.poll() is not None, 4), \
            "the kernel was still running 4 s after its shutdown request"
        assert process.returncode == 0
        k.close()


def test_no_container_within_10s_of_sigkill(start_kernel: Start) -> None:
    k = start_kernel()
    k.ok("x = 1")
    cid = k.container().id
    os.kill(k.pid, signal.SIGKILL)
    killed_at = time.monotonic()
    gone = wait_until(lambda: not _exists(cid), GONE_WITHIN_S)
    assert gone, f"container {cid[:12]} still there {GONE_WITHIN_S} s after SIGKILL"
    assert time.monotonic() - killed_at <= GONE_WITHIN_S + 1
    assert not containers_of(k.pid)


def _running(pid: int) -> bool:
    """Alive and not a zombie (an orphan's reaper may be slow to collect it)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_the_kernel_and_its_sandbox_go_when_the_process_that_started_it_dies(
        tmp_path: Path) -> None:
    """As ipykernel's parent poller: a kernel whose launcher was SIGKILLed exits (removing
    its sandbox) instead of holding a container for nobody."""
    from jupyter_client.connect import write_connection_file

    conn, _ = write_connection_file(str(tmp_path / "kernel.json"))
    launcher = ("import os, subprocess, sys, time\n"
                "k = subprocess.Popen([sys.executable, '-m', 'sandbox_kernel', '-f', sys.argv[1]],"
                " stdout=subprocess.DEVNULL,"
                " env={**os.environ, 'JPY_PARENT_PID': str(os.getpid())})\n"
                "print(k.pid, flush=True)\ntime.sleep(600)\n")
    parent = subprocess.Popen([sys.executable, "-c", launcher, conn], stdout=subprocess.PIPE,
                              text=True)
    assert parent.stdout is not None
    kernel = int(parent.stdout.readline())
    try:
        assert wait_until(lambda: containers_of(kernel), 60), "the kernel started no sandbox"
        parent.kill()
        parent.wait(timeout=30)
        assert wait_until(lambda: not _running(kernel), GONE_WITHIN_S), \
            "the kernel outlived the process that started it"
        assert wait_until(lambda: not containers_of(kernel), GONE_WITHIN_S)
    finally:
        if _running(kernel):
            os.kill(kernel, signal.SIGKILL)
        if parent.poll() is None:
            parent.kill()
        parent.communicate(timeout=30)


def test_a_kernel_started_by_hand_writes_a_private_connection_file_to_connect_to(
        tmp_path: Path) -> None:
    """As ipykernel without -f: a file in Jupyter's runtime directory, readable by its owner
    only (it holds the signing key), that `jupyter console --existing` can use."""
    from jupyter_client.blocking import BlockingKernelClient

    kernel = subprocess.Popen([sys.executable, "-m", "sandbox_kernel"], stderr=subprocess.PIPE,
                              text=True, env={**os.environ,
                                              "JUPYTER_RUNTIME_DIR": str(tmp_path)})
    path = tmp_path / f"kernel-{kernel.pid}.json"
    client = BlockingKernelClient()
    try:
        assert wait_until(path.exists, 30), "no connection file was written"
        assert path.stat().st_mode & 0o077 == 0
        client.load_connection_file(str(path))
        client.start_channels()
        assert client.kernel_info(reply=True, timeout=30)["content"]["status"] == "ok"
        client.shutdown()
        assert kernel.wait(timeout=30) == 0
        assert not containers_of(kernel.pid)
    finally:
        client.stop_channels()
        if kernel.poll() is None:
            kernel.kill()
        _, err = kernel.communicate(timeout=30)
    assert f"--existing {path.name}" in err


def test_restart_gives_a_fresh_empty_sandbox(start_kernel: Start) -> None:
    k = start_kernel()
    k.ok("open('/sandbox/before-restart.txt', 'w').write('x')\nrestart_var = 1")
    assert k.value("sorted(__import__('os').listdir('/sandbox'))") == "['before-restart.txt']"
    old_pid, old_cid = k.pid, k.container().id
    k.restart()
    assert k.pid != old_pid
    assert k.value("__import__('os').listdir('/sandbox')") == "[]"
    assert k.execute("restart_var").reply["ename"] == "NameError"
    assert wait_until(lambda: not _exists(old_cid), 5)
    assert k.container().id != old_cid


def test_idle_sandbox_is_reclaimed_and_the_next_cell_says_so(start_kernel: Start) -> None:
    k = start_kernel(extra_arguments=["--Sandbox.idle_timeout=2"])
    k.ok("idle_var = 1")
    old = k.container().id
    assert wait_until(lambda: not _exists(old), 20), "idle sandbox was not reclaimed"
    r = k.execute("print(idle_var)")
    assert "reclaimed after" in r.text("stderr")
    assert "state was reset" in r.text("stderr")
    assert r.reply["ename"] == "NameError"
    new = k.container().id
    assert new != old
    assert k.value("1 + 1") == "2"
    # A busy cell longer than the idle timeout is not reclaimed under it.
    r = k.ok("import time\nlong_var = 5\ntime.sleep(3)\nprint('done')")
    assert r.text("stdout") == "done\n"
    assert k.value("long_var") == "5"


def test_container_killed_from_outside_is_reported_and_replaced(start_kernel: Start) -> None:
    k = start_kernel()
    k.ok("killed_var = 1")
    old = k.container().id
    docker("kill", old)
    assert wait_until(lambda: not _exists(old), 10)
    r = k.execute("print(killed_var)")
    assert r.status == "error"
    report = r.shown()
    assert re.search(r"removed from outside|stopped|killed", report), report
    assert re.search(r"fresh sandbox", report), report
    assert k.alive()
    r = k.execute("print(killed_var)")
    assert r.reply["ename"] == "NameError"
    assert k.value("6 * 7") == "42"
    assert k.container().id != old


def test_container_paused_from_outside_is_reported_and_replaced(start_kernel: Start) -> None:
    k = start_kernel()
    paused: list[str] = []
    try:
        # Paused between cells: the next cell notices within the watchdog period.
        k.ok("paused_var = 1")
        first = k.container().id
        docker("pause", first)
        paused.append(first)
        r = k.execute("print('never')", timeout=60)
        assert r.status == "error"
        assert r.reply["ename"] == "SandboxError"
        assert "paused" in r.reply["evalue"]
        assert "fresh sandbox" in r.reply["evalue"]
        assert r.msgs[-1].t < 12
        assert "never" not in r.text("stdout")
        assert k.execute("paused_var").reply["ename"] == "NameError"
        assert wait_until(lambda: not _exists(first), 10)

        # Paused while a cell runs.
        second = k.container().id
        assert second != first

        def pause_when_started(m: object) -> None:
            if not paused[1:] and "started" in getattr(m, "content", {}).get("text", ""):
                docker("pause", second)
                paused.append(second)

        r = k.execute("import time\nprint('started', flush=True)\ntime.sleep(60)",
                      on_msg=pause_when_started, timeout=60)
        assert paused[1:] == [second]
        assert r.reply["ename"] == "SandboxError"
        assert "paused" in r.reply["evalue"]
        assert r.msgs[-1].t < 15
        assert k.value("'works again'") == "'works again'"
        assert wait_until(lambda: not _exists(second), 10)
    finally:
        for cid in paused:
            if _exists(cid):
                docker("unpause", cid, check=False)
                docker("rm", "-f", cid, check=False)


def _memory_limit_shown(k: KernelHandle) -> str:
    r = k.ok("%sandbox limits")
    text = r.displays()[0]["text/plain"]
    m = re.search(r"^memory\s+(\S+)", text, re.M)
    assert m, text
    return m.group(1)


def test_config_file_in_the_working_directory_is_not_loaded(start_kernel: Start,
                                                            tmp_path: Path) -> None:
    marker = tmp_path / "config-was-executed"
    config = (f"open({str(marker)!r}, 'w').write('yes')\n"
              "c.Sandbox.memory = '256m'\n")
    workdir = tmp_path / "notebook-dir"
    workdir.mkdir()
    (workdir / "sandbox_kernel_config.py").write_text(config)
    k = start_kernel(cwd=workdir)
    assert _memory_limit_shown(k) == "512m"
    assert not marker.exists()

    # The same file in a Jupyter config directory is loaded (so the check above can fail).
    confdir = tmp_path / "jupyter-config"
    confdir.mkdir()
    (confdir / "sandbox_kernel_config.py").write_text(config)
    k2 = start_kernel(cwd=workdir, env={**os.environ, "JUPYTER_CONFIG_DIR": str(confdir)})
    assert _memory_limit_shown(k2) == "256m"
    assert marker.read_text() == "yes"
