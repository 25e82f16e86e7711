"""Inside a sandbox the CPU count is the CPU limit, for Python, numpy, Node and the shell."""

from __future__ import annotations

import os
from typing import Any

import pytest

PY = ("import os, multiprocessing, concurrent.futures as cf, threadpoolctl, numpy\n"
      "blas = max(i['num_threads'] for i in threadpoolctl.threadpool_info())\n"
      "print(os.cpu_count(), multiprocessing.cpu_count(), blas, "
      "cf.ThreadPoolExecutor()._max_workers)")
NODE = "const os = require('os'); console.log(os.cpus().length, os.availableParallelism())"


def counts(s: Any, run_cell: Any) -> tuple[str, str, str, str]:
    r, ev = run_cell(s, PY)
    assert r.ok, ev
    cell = "".join(e.get("text", "") for e in ev).split()
    command = s.execute_command(["python3", "-c", PY]).stdout.split()
    assert command == cell  # a process the cell starts counts alike
    node = s.execute_command(["node", "-e", NODE]).stdout
    shell = s.execute_command("nproc; echo $OMP_NUM_THREADS").stdout
    return " ".join(cell), node.strip(), shell.split()[0], shell.split()[1]


def test_the_count_follows_the_limit(make_session: Any, run_cell: Any) -> None:
    s = make_session()
    assert s.limits.cpus == 1
    assert counts(s, run_cell) == ("1 1 1 5", "1 1", "1", "1")
    r, ev = run_cell(s, NODE, lang="node")
    assert r.ok and "".join(e.get("text", "") for e in ev).strip() == "1 1"


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two cores")
def test_a_raised_limit_counts_live_and_for_new_processes(make_session: Any,
                                                          run_cell: Any) -> None:
    s = make_session()
    s.update_limits(cpus=2)
    r, ev = run_cell(s, "import os; print(os.cpu_count())")  # the worker started before
    assert r.ok and "".join(e.get("text", "") for e in ev).strip() == "2"
    assert s.execute_command(["python3", "-c", PY]).stdout.split() == ["2", "2", "2", "6"]
    assert s.execute_command(["node", "-e", NODE]).stdout.strip() == "2 2"
    s.set_env({"OMP_NUM_THREADS": "1"})  # the user's own setting wins
    assert s.execute_command("echo $OMP_NUM_THREADS; nproc").stdout.split() == ["1", "1"]
