"""Resource abuse from inside a cell: every limit bites with a reported error, and the kernel
answers the next cell with its state (or says the state was lost).

Covered elsewhere, not repeated: a growing-list memory bomb through the kernel
(tests/kernel/test_execution.py::test_oom_is_reported_and_the_sandbox_recovers), fork
bombs and timeouts of one-shot commands (tests/docker/test_limits_bite.py).
"""

from __future__ import annotations

import time

import pytest

from .conftest import KernelHandle, probe, set_limits, settle, zombies

pytestmark = pytest.mark.docker

MiB = 1 << 20
#: The processes an idle sandbox runs: docker-init, the agent and the Python interpreter.
IDLE = ["docker-init", "python", "python"]


def idle_again(k: KernelHandle) -> None:
    """No zombies and nothing but the idle processes left (polled: kills take a moment)."""
    rows = settle(k, lambda rows: sorted(r[2] for r in rows) != IDLE or zombies(rows))
    assert zombies(rows) == [], rows
    assert sorted(r[2] for r in rows) == IDLE, rows


def pids_refused(k: KernelHandle) -> int:
    """How many forks the pids cgroup has refused so far (pids.events 'max')."""
    return int(probe(k, r'''
import json, os
v2 = os.path.exists("/sys/fs/cgroup/cgroup.controllers")
path = "/sys/fs/cgroup/pids.events" if v2 else "/sys/fs/cgroup/pids/pids.events"
print(json.dumps(dict(l.split() for l in open(path))["max"]))
'''))


def test_python_fork_bomb_stops_at_the_pids_limit_and_leaves_one_interpreter(
        k: KernelHandle) -> None:
    k.ok("import os\nbomb_marker = 'kept'\ninterpreter = os.getpid()")
    refused_before = pids_refused(k)
    t0 = time.monotonic()
    r = k.execute("import os\nwhile True:\n    os.fork()", timeout=60)
    elapsed = time.monotonic() - t0
    assert r.status == "error"
    assert (r.reply["ename"], r.reply["evalue"]) == (
        "BlockingIOError", "[Errno 11] Resource temporarily unavailable")
    assert elapsed < 10
    refused = pids_refused(k) - refused_before
    assert refused > 0
    print(f"\npython fork bomb: stopped by pids=20 after {elapsed:.2f} s, "
          f"{refused} forks refused")
    # Every forked copy of the interpreter exits when the cell's code returns to it; none
    # is left to read the next cells' requests (each cell is answered by the one process
    # that holds the state).
    for _ in range(5):
        assert k.value("(os.getpid() == interpreter, bomb_marker)") == "(True, 'kept')"
    idle_again(k)


@pytest.mark.parametrize("cell, complaint, verdict_message", [
    ("%%bash\nf(){ f|f& };f\nsleep 100", "fork: retry: Resource temporarily unavailable",
     "cell timed out after 3 s; its processes were killed"),
    ("import subprocess\nsubprocess.run('f(){ f|f& };f; sleep 100', shell=True)",
     "Cannot fork", "cell timed out after 3 s"),
], ids=["bash-cell", "python-subprocess"])
def test_shell_fork_bomb_is_bounded_by_the_cell_timeout(
        k: KernelHandle, cell: str, complaint: str, verdict_message: str) -> None:
    set_limits(k, "timeout=3s")
    try:
        t0 = time.monotonic()
        r = k.execute(cell, timeout=60)
        elapsed = time.monotonic() - t0
    finally:
        set_limits(k, "timeout=300s")
    assert r.status == "error"
    assert (r.reply["ename"], r.reply["evalue"]) == ("TimeoutError", verdict_message)
    assert r.metadata["sandbox"]["verdict"] == "timeout"
    assert complaint in r.text("stderr")  # the pids limit bit first
    assert 3 <= elapsed < 10
    idle_again(k)
    assert k.value("6 * 7") == "42"


def test_thread_bomb_gets_a_runtime_error_and_the_pids_come_back(k: KernelHandle) -> None:
    r = k.execute("import threading\nrelease = threading.Event()\nfor _ in range(100):\n"
                  "    threading.Thread(target=release.wait, daemon=True).start()")
    assert (r.reply["ename"], r.reply["evalue"]) == ("RuntimeError", "can't start new thread")
    # While the threads hold every pid, even a shell cannot start, and the cell says why.
    r = k.execute("%%bash\necho never")
    assert (r.reply["ename"], r.reply["evalue"]) == (
        "CalledProcessError", "Command 'b'echo never\\n'' returned non-zero exit status 127.")
    assert r.text("stderr") == "/bin/bash: Resource temporarily unavailable\n"
    assert "never" not in r.text("stdout")
    assert k.value("release.set()\nfor t in threading.enumerate():\n"
                   "    t is threading.main_thread() or t.join(5)\n"
                   "sum(t.name.startswith('Thread-') for t in threading.enumerate())") == "0"
    assert k.ok("%%bash\necho back").text("stdout") == "back\n"


def test_one_huge_allocation_is_an_oom_verdict_and_the_kernel_recovers(
        k: KernelHandle) -> None:
    k.ok("open('/sandbox/kept.txt', 'w').write('file')\nbefore_oom = 1")
    r = k.execute("blob = ' ' * (2 * 1024**3)", timeout=120)
    assert r.status == "error"
    assert r.reply["ename"] == "MemoryError"
    assert r.reply["evalue"].startswith(
        "cell exceeded the 512 MB memory limit (OOM); interpreter restarted, /sandbox files "
        "kept.")
    assert r.metadata["sandbox"]["verdict"] == "oom"
    assert k.execute("before_oom").reply["ename"] == "NameError"
    assert k.value("open('/sandbox/kept.txt').read()") == "'file'"


@pytest.mark.parametrize("root, size", [("/tmp", 64 * MiB), ("/sandbox", 256 * MiB)])
def test_filling_a_tmpfs_is_enospc(k: KernelHandle, root: str, size: int) -> None:
    k.ok("import os\nfill_state = 'kept'")
    try:
        r = k.execute(f"with open('{root}/fill', 'wb') as f:\n    chunk = b'x' * (1 << 20)\n"
                      "    while True:\n        f.write(chunk)", timeout=60)
        assert (r.reply["ename"], r.reply["evalue"]) == (
            "OSError", "[Errno 28] No space left on device")
        written = int(k.value(f"os.path.getsize('{root}/fill')"))
        assert size - 2 * MiB < written <= size
        assert k.value("fill_state") == "'kept'"
    finally:
        k.ok(f"import os\nif os.path.exists('{root}/fill'):\n    os.remove('{root}/fill')")


def test_a_file_past_the_1gb_size_limit_is_efbig(k: KernelHandle) -> None:
    k.ok("import os\nbig_state = 'kept'")
    r = k.execute("f = open('/sandbox/big', 'wb', buffering=0)\n"
                  "f.seek(2**30 - 1); f.write(b'x')  # the last byte a 1 GB file may have\n"
                  "f.seek(2**31); f.write(b'x')  # sparse, but past the limit")
    assert (r.reply["ename"], r.reply["evalue"]) == ("OSError", "[Errno 27] File too large")
    # EFBIG, not SIGXFSZ: the interpreter (and its state) survived
    assert k.value("f.close(); big_state, os.path.getsize('/sandbox/big')") == \
        "('kept', 1073741824)"
    k.ok("os.remove('/sandbox/big')")


def test_a_million_empty_files_run_out_of_inodes_not_memory(k: KernelHandle) -> None:
    r = k.execute(r'''
import os, time
os.mkdir("/tmp/many")
created, t0 = 0, time.monotonic()
try:
    while created < 1_000_000 and time.monotonic() - t0 < 30:
        open(f"/tmp/many/{created}", "w").close()
        created += 1
finally:
    print(created, round(time.monotonic() - t0, 2))
''', timeout=90)
    created, seconds = r.text("stdout").split()
    assert r.reply["ename"] == "OSError"
    assert r.reply["evalue"] == f"[Errno 28] No space left on device: '/tmp/many/{created}'"
    assert 10_000 < int(created) < 1_000_000
    health = k.ok("%sandbox health").displays()[0]["text/plain"]
    print(f"\n{created} empty files in /tmp in {seconds} s, then ENOSPC; {health!r}")
    assert "sandbox HEALTHY" in health
    assert k.value("import shutil; shutil.rmtree('/tmp/many'); 'removed'") == "'removed'"


def test_fd_exhaustion_is_emfile_and_the_control_channel_still_works(
        k: KernelHandle) -> None:
    r = k.execute("[open('/dev/null') for _ in range(10**6)]")
    assert (r.reply["ename"], r.reply["evalue"]) == (
        "OSError", "[Errno 24] Too many open files: '/dev/null'")
    # Now keep every descriptor the interpreter may have, and drive the kernel meanwhile.
    held = int(k.value("held = []\ntry:\n    while True:\n        held.append(open('/dev/null'))"
                       "\nexcept OSError:\n    pass\nlen(held)"))
    assert 1000 < held < 1024
    assert k.ok("print('still answering')").text("stdout") == "still answering\n"
    reply = k.request("complete", "pri")  # answered (the completer itself may need fds)
    assert (reply["status"], reply["cursor_end"]) == ("ok", 3)
    assert "sandbox HEALTHY" in k.ok("%sandbox health").displays()[0]["text/plain"]
    assert k.ok("%%bash\necho shell").text("stdout") == "shell\n"
    sent: list[float] = []

    def interrupt(m: object) -> None:
        if not sent and "sleeping" in getattr(m, "content", {}).get("text", ""):
            sent.append(time.monotonic())
            k.km.interrupt_kernel()

    r = k.execute("import time\nprint('sleeping', flush=True)\ntime.sleep(30)",
                  on_msg=interrupt, timeout=30)
    assert sent and r.reply["ename"] == "KeyboardInterrupt"
    assert k.value("del held\nimport os\nlen(os.listdir('/proc/self/fd')) < 50") == "True"
    assert k.ok("!echo pipes-again").text("stdout") == "pipes-again\n"
