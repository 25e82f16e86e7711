"""The `sandbox-kernel` command line, run as a user would run it."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sandbox_kernel.sandbox.docker_backend import DockerBackend
from sandbox_kernel.sandbox.image import agent_hash, default_image
from sandbox_kernel.sandbox.reaper import owner_of

pytestmark = pytest.mark.docker

SCRIPT = Path(sys.executable).with_name("sandbox-kernel")
CLI = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "sandbox_kernel.cli"]


def containers_of(pid: int) -> list[str]:
    backend = DockerBackend()
    try:
        return [r.id for r in backend.list_owned() if (o := owner_of(r)) and o.pid == pid]
    finally:
        backend.client.close()


def cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run the CLI; afterwards none of the containers it made may remain."""
    env = {k: v for k, v in os.environ.items() if k != "SANDBOX_IMAGE"}
    proc = subprocess.Popen([*CLI, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)
    try:
        out, err = proc.communicate(timeout=timeout)
    finally:
        proc.kill()
    deadline = time.monotonic() + 10
    while (left := containers_of(proc.pid)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not left, f"`sandbox-kernel {' '.join(args)}` left containers behind: {left}"
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def no_traceback(r: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in r.stderr and "Traceback" not in r.stdout


def test_exec_prints_output() -> None:
    r = cli("exec", "--", "python3", "-c", "print(1+1)")
    assert (r.returncode, r.stdout) == (0, "2\n"), r.stderr
    no_traceback(r)


def test_exec_exit_code_passes_through() -> None:
    r = cli("exec", "--", "sh", "-c", "echo err >&2; exit 3")
    assert r.returncode == 3
    assert r.stderr == "err\n"


def test_exec_timeout() -> None:
    t0 = time.monotonic()
    r = cli("exec", "--timeout", "1s", "--", "sleep", "10")
    assert time.monotonic() - t0 < 9
    assert r.returncode == 124
    assert r.stderr.strip() == "sandbox-kernel: command timed out after 1 s and was killed"


def test_exec_memory_limit_bites() -> None:
    r = cli("exec", "--memory", "64m", "--", "python3", "-c", "x = bytearray(512 * 1024**2)")
    assert r.returncode == 137
    assert "exceeded the 64m memory limit (OOM)" in r.stderr


@pytest.mark.parametrize("args", [
    ("--memory=-1",), ("--memory", "nan"), ("--cpus", "0"), ("--pids", "1e99"),
    ("--timeout", "\u0665s"),
])
def test_exec_bad_limit_is_one_line(args: tuple[str, ...]) -> None:
    r = cli("exec", *args, "--", "true")
    assert r.returncode == 1
    assert r.stdout == ""
    lines = r.stderr.splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("sandbox-kernel: ")
    assert "between " in lines[0]
    no_traceback(r)


def test_exec_without_command() -> None:
    r = cli("exec", "--")
    assert r.returncode == 1
    assert r.stderr.startswith("sandbox-kernel: nothing to run")
    no_traceback(r)


def test_doctor() -> None:
    fresh = DockerBackend().image_labels(default_image()).get("sandbox_kernel.agent_hash") \
        == agent_hash()
    r = cli("doctor")
    no_traceback(r)
    assert re.search(r"^ok +Docker engine \S+ \(API", r.stdout, re.M), r.stdout
    assert re.search(r"^ok +sandbox starts \(\d+ ms\) and runs Python: '2'$", r.stdout, re.M), \
        r.stdout
    if fresh:
        assert r.returncode == 0, r.stdout
        assert r.stdout.rstrip().endswith("all checks passed")
    else:  # the image predates the agent sources here: doctor must say so and fail
        assert r.returncode == 1
        assert re.search(r"rebuild it with 'sandbox-kernel build-image --tag \S+'", r.stdout), \
            r.stdout


def test_doctor_reads_the_jupyter_config_and_the_kernelspecs(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "sandbox_kernel_config.py"
    config.write_text('c.Sandbox.memory = "lots"\nc.Sandbox.memroy = "1g"\n'
                      'c.Sandbox.image = "sandbox-kernel:no-such-image-for-doctor"\n')
    monkeypatch.setenv("JUPYTER_CONFIG_DIR", str(tmp_path))
    r = cli("doctor")
    no_traceback(r)
    assert r.returncode == 1
    assert re.search(r"^ok +kernelspec sandbox \('Python 3 \(sandbox\)', ", r.stdout, re.M), \
        r.stdout
    assert f"ok   config files: {config}" in r.stdout
    assert re.search(rf"^FAIL +kernelspec sandbox: {re.escape(str(config))}: c.Sandbox.memory "
                     r"= 'lots' is not valid", r.stdout, re.M), r.stdout
    assert re.search(r"^note +kernelspec sandbox: .*did you mean c.Sandbox.memory", r.stdout,
                     re.M), r.stdout
    assert re.search(r"^FAIL +the sandbox image 'sandbox-kernel:no-such-image-for-doctor' is "
                     r"not on the engine .*'sandbox-kernel build-image --tag "
                     r"sandbox-kernel:no-such-image-for-doctor'", r.stdout, re.M), r.stdout


def test_pool_keeps_exactly_the_size_asked_for() -> None:
    env = {k: v for k, v in os.environ.items() if k != "SANDBOX_IMAGE"}
    # Limits of its own, so that no other kernel on this engine claims from this pool.
    # Started the way a script's background job is, with SIGINT ignored: Ctrl-C still stops it.
    pool = shlex.join([*CLI, "pool", "--size", "2", "--memory", "333m"])
    proc = subprocess.Popen(["bash", "-c", f"trap '' INT; exec {pool}"],
                            stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().startswith("keeping 2 warm sandbox(es)")
        counts = []
        for _ in range(8):  # the background refill runs every 2 s: watch a few rounds
            counts.append(len(containers_of(proc.pid)))
            time.sleep(0.5)
        assert counts == [2] * len(counts), counts
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=60)
    deadline = time.monotonic() + 10
    while containers_of(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert containers_of(proc.pid) == []


def test_ls_shows_a_live_session(session) -> None:
    r = cli("ls")
    assert r.returncode == 0
    row = [line for line in r.stdout.splitlines() if line.startswith(session.session_id)]
    assert len(row) == 1, r.stdout
    assert session.container_id[:12] in row[0]
    assert f"{os.getpid()} (alive)" in row[0]
    assert "running" in row[0]
    rows = json.loads(cli("ls", "--json").stdout)
    assert session.container_id in [x["id"] for x in rows]


def test_cleanup_dry_run_keeps_live_sessions(session) -> None:
    r = cli("cleanup", "--dry-run")
    assert r.returncode == 0
    assert re.fullmatch(r"\d+ container\(s\) would remove", r.stdout.splitlines()[-1])
    assert session.container_id[:12] not in r.stdout
    assert session.execute_command(["true"]).exit_code == 0


def test_health_of_a_live_session(session) -> None:
    r = cli("health", session.session_id)
    assert r.returncode == 0, r.stderr
    assert re.fullmatch(r"HEALTHY: Memory=\d+% CPU=\d+% Pids=\d+/20\n", r.stdout), r.stdout
    r = cli("health", "--threshold", "0.001", session.container_id[:12])
    assert r.returncode == 1
    assert r.stdout.startswith("UNHEALTHY: Memory usage exceeds threshold")


def test_health_of_unknown_session() -> None:
    r = cli("health", "no-such-session")
    assert r.returncode == 1
    assert r.stderr == "sandbox-kernel: no sandbox container matches 'no-such-session'; " \
                       "see 'sandbox-kernel ls'\n"
