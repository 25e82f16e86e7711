"""Processes a cell starts do not outlive it when it is interrupted or times out, however
they detach, and no zombies pile up (they would count against the 20-process limit).

One-shot commands (``setsid`` children, timeouts) are covered in
tests/docker/test_limits_bite.py; interrupts and timeouts of plain cells in
tests/kernel/test_execution.py. Here the cells leave children behind on purpose.
"""

from __future__ import annotations

import time

import pytest
from kernel.conftest import wait_until

from .conftest import KernelHandle, processes_from_outside, set_limits, settle, zombies

pytestmark = pytest.mark.docker

#: A cell that starts a child in a new session and a double-forked daemon, then waits.
DETACHING = r'''
import os, subprocess, time
setsid_child = subprocess.Popen(["sleep", "1000"], start_new_session=True)
pid = os.fork()
if pid == 0:  # the classic daemon: fork, setsid, fork again, parent exits
    os.setsid()
    if os.fork() == 0:
        os.execvp("sleep", ["sleep", "1001"])
    os._exit(0)
os.waitpid(pid, 0)
print("children started", flush=True)
time.sleep(60)
'''


def sleepers(rows: list[tuple[int, str, str]]) -> list[tuple[int, str, str]]:
    return [r for r in rows if r[2] == "sleep"]


@pytest.mark.parametrize("how", ["interrupt", "timeout"])
def test_detached_children_do_not_survive_their_cell(k: KernelHandle, how: str) -> None:
    sent: list[float] = []
    running: list[tuple[int, str, str]] = []

    def both_sleeping() -> list[tuple[int, str, str]]:
        found = sleepers(processes_from_outside(k))
        return found if len(found) == 2 else []

    def interrupt(m: object) -> None:
        if not sent and "children started" in getattr(m, "content", {}).get("text", ""):
            sent.append(time.monotonic())
            # positive control: both children run while the cell does
            running.extend(wait_until(both_sleeping, 5) or [])
            if how == "interrupt":
                k.km.interrupt_kernel()

    if how == "timeout":
        set_limits(k, "timeout=3s")
    try:
        r = k.execute(DETACHING, on_msg=interrupt, timeout=60)
    finally:
        if how == "timeout":
            set_limits(k, "timeout=300s")
    assert sent, r
    assert len(running) == 2, running
    expected = ("KeyboardInterrupt", "") if how == "interrupt" else \
        ("TimeoutError", "cell timed out after 3 s")
    assert (r.reply["ename"], r.reply["evalue"]) == expected
    rows = settle(k, lambda rows: sleepers(rows) or zombies(rows))
    assert sleepers(rows) == [] and zombies(rows) == [], rows
    # The interpreter kept its state, and the Popen it holds saw its child killed.
    assert k.value("setsid_child.wait(5)") == "-9"


def test_children_left_unwaited_leave_no_zombies(k: KernelHandle) -> None:
    r = k.ok("import subprocess\nfor _ in range(50):\n    subprocess.Popen(['true'])\n"
             "kept = [subprocess.Popen(['sh', '-c', 'exit 3']) for _ in range(3)]")
    assert r.status == "ok"
    rows = settle(k, zombies)
    assert zombies(rows) == [], rows
    # Children still referenced were reaped through their Popen: the status is kept.
    assert k.value("[p.wait(5) for p in kept]") == "[3, 3, 3]"


def test_a_bash_cell_ignoring_sigterm_is_killed_by_the_timeout(k: KernelHandle) -> None:
    set_limits(k, "timeout=2s")
    try:
        t0 = time.monotonic()
        r = k.execute("%%bash\ntrap '' TERM\necho trapped\nsleep 1000", timeout=60)
        elapsed = time.monotonic() - t0
    finally:
        set_limits(k, "timeout=300s")
    assert r.text("stdout") == "trapped\n"
    assert (r.reply["ename"], r.reply["evalue"]) == (
        "TimeoutError", "cell timed out after 2 s; its processes were killed")
    assert r.metadata["sandbox"]["verdict"] == "timeout"
    assert 2 <= elapsed < 6
    rows = settle(k, lambda rows: sleepers(rows) or zombies(rows))
    assert sleepers(rows) == [] and zombies(rows) == [], rows
