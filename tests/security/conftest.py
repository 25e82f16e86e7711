"""Kernels for the adversarial suite: every attempt is made from inside a cell.

The kernels come from tests/kernel's ``KernelHandle`` (the installed ``sandbox``
kernelspec driven by jupyter_client). Each module shares one kernel between its cases;
a case that changes limits puts them back. Container and process leaks are checked after
every module by tests/conftest.py.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import psutil
import pytest
from kernel.conftest import KernelHandle, containers_of, docker


@pytest.fixture(scope="module")
def k(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KernelHandle]:
    h = KernelHandle("sandbox", cwd=tmp_path_factory.mktemp("security-cwd"))
    try:
        h.ok("print('ready')")  # the interpreter is up before any abuse starts
        yield h
    finally:
        h.close()


#: Cell code for attack probes: attempt(name, fn) records "ALLOWED" or the errno's name in res.
ATTEMPT = r'''
import errno, json, os
res = {}
def attempt(name, fn):
    try:
        fn()
        res[name] = "ALLOWED"
    except OSError as e:
        res[name] = errno.errorcode.get(e.errno, str(e))
'''


def probe(k: KernelHandle, code: str, **kwargs: Any) -> Any:
    """Run a cell whose last stdout line is JSON, and return that value."""
    r = k.ok(code, **kwargs)
    lines = r.text("stdout").strip().splitlines()
    assert lines, f"no output from the probe: {r}"
    return json.loads(lines[-1])


def container_processes(k: KernelHandle) -> list[psutil.Process]:
    """Every process of the kernel's sandbox, seen from the host (init first)."""
    (record,) = containers_of(k.pid)
    pid = int(docker("inspect", "-f", "{{.State.Pid}}", record.id).stdout)
    init = psutil.Process(pid)
    return [init, *init.children(recursive=True)]


def processes(k: KernelHandle) -> list[tuple[int, str, str]]:
    """(pid, state, command) of every process in the sandbox but the reading shell and its
    ps, read by a %%bash cell (it runs beside the interpreter: reading reaps nothing)."""
    r = k.ok("%%bash\necho $$\nps -eo pid=,ppid=,stat=,comm=")
    me, *lines = r.text("stdout").splitlines()
    rows = []
    for line in lines:
        pid, ppid, stat, comm = line.split(None, 3)
        if me not in (pid, ppid):
            rows.append((int(pid), stat, comm))
    return rows


def processes_from_outside(k: KernelHandle) -> list[tuple[int, str, str]]:
    """The same, read with ``docker exec`` (usable while a cell runs)."""
    out = docker("exec", k.container().id, "ps", "-eo", "pid=,stat=,comm=").stdout
    rows = []
    for line in out.splitlines():
        pid, stat, comm = line.split(None, 2)
        if comm != "ps":
            rows.append((int(pid), stat, comm))
    return rows


def settle(k: KernelHandle, bad: Any, timeout: float = 5.0) -> list[tuple[int, str, str]]:
    """Processes, polled until ``bad(rows)`` is empty (killed processes take a moment)."""
    deadline = time.monotonic() + timeout
    while True:
        rows = processes(k)
        if not bad(rows) or time.monotonic() > deadline:
            return rows
        time.sleep(0.2)


def zombies(rows: list[tuple[int, str, str]]) -> list[tuple[int, str, str]]:
    return [r for r in rows if r[1].startswith("Z")]


def set_limits(k: KernelHandle, spec: str) -> None:
    r = k.execute(f"%sandbox limits {spec}")
    assert r.status == "ok", r


def peak_rss_mib(pid: int) -> float:
    """A process's peak resident memory (VmHWM), in MiB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")
