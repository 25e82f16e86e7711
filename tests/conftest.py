"""Shared fixtures: one SandboxManager per test run, a fresh session per test, a leak check.

Docker test modules mark themselves with ``pytestmark = pytest.mark.docker``. After each
such module (and once more at the end of the run) no container labelled
``sandbox_kernel.session`` whose owner is this test process, or a kernel process this test
process launched (through jupyter_client's local provisioner, recorded in KERNEL_PIDS), may
remain; nor may a kernel process (``python -m sandbox_kernel``) the tests started still run.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from typing import Any

import engine_matrix
import psutil
import pytest

from sandbox_kernel.errors import SessionNotFound
from sandbox_kernel.sandbox.docker_backend import DockerBackend
from sandbox_kernel.sandbox.manager import SandboxManager
from sandbox_kernel.sandbox.reaper import host_id, owner_of, process_start
from sandbox_kernel.sandbox.spec import CellResult, Limits

#: How long auto-removal of a container whose agent exited may take before it is a leak.
LEAK_GRACE_S = 10.0

_docker_used = False

#: pids of every kernel process launched from this test process by jupyter_client (any
#: KernelManager: tests/kernel's handles, tests/security, tests/faults, nbclient...). A
#: kernel's sandbox containers carry the kernel's pid as their owner, not ours.
KERNEL_PIDS: set[int] = set()


def _own_containers(kernel_pids: set[int] | frozenset[int] = frozenset()) -> list[Any]:
    owners = {os.getpid(), *kernel_pids}
    me = host_id()
    backend = DockerBackend()
    try:
        return [r for r in backend.list_owned()
                if (o := owner_of(r)) is not None and o.pid in owners
                and (o.pid == os.getpid() or o.host == me)]
    finally:
        backend.client.close()


def _assert_no_leaks(where: str, kernel_pids: set[int] | frozenset[int] = frozenset()) -> None:
    deadline = time.monotonic() + LEAK_GRACE_S
    leaked = _own_containers(kernel_pids)
    while leaked and time.monotonic() < deadline:
        time.sleep(0.25)
        leaked = _own_containers(kernel_pids)
    if leaked:
        backend = DockerBackend()
        for r in leaked:  # clean up so one leak does not cascade into every later module
            if r.status == "paused":
                with contextlib.suppress(Exception):
                    backend.api.request("POST", f"/containers/{r.id}/unpause")
            backend.remove(r.id)
        backend.client.close()
        rows = "\n".join(f"  {r.id[:12]} {r.name} ({r.status})" for r in leaked)
        pytest.fail(f"{where} leaked {len(leaked)} sandbox container(s):\n{rows}",
                    pytrace=False)


def _stray_kernels() -> list[psutil.Process]:
    """Kernel processes (``-m sandbox_kernel``) still running as children of this process."""
    found = []
    for child in psutil.Process().children(recursive=False):
        try:
            if child.status() == psutil.STATUS_ZOMBIE:
                continue
            if "sandbox_kernel" in child.cmdline():
                found.append(child)
        except psutil.NoSuchProcess:
            continue
    return found


def _assert_no_stray_kernels(where: str) -> None:
    deadline = time.monotonic() + LEAK_GRACE_S
    strays = _stray_kernels()
    while strays and time.monotonic() < deadline:
        time.sleep(0.25)
        strays = _stray_kernels()
    if strays:
        rows = "\n".join(f"  pid {p.pid}: {' '.join(p.cmdline())[:120]}" for p in strays)
        for p in strays:
            with contextlib.suppress(psutil.NoSuchProcess):
                p.kill()
        pytest.fail(f"{where} left {len(strays)} kernel process(es) running:\n{rows}",
                    pytrace=False)


@pytest.fixture(scope="session", autouse=True)
def _record_kernel_pids() -> Iterator[None]:
    """Note the pid of every kernel jupyter_client launches from this process."""
    try:
        from jupyter_client.provisioning.local_provisioner import LocalProvisioner
    except ImportError:
        yield
        return
    original = LocalProvisioner.launch_kernel

    async def launch_kernel(self: Any, cmd: list[str], **kwargs: Any) -> Any:
        info = await original(self, cmd, **kwargs)
        if self.process is not None:
            KERNEL_PIDS.add(self.process.pid)
        return info

    LocalProvisioner.launch_kernel = launch_kernel  # type: ignore[method-assign]
    try:
        yield
    finally:
        LocalProvisioner.launch_kernel = original  # type: ignore[method-assign]


def pytest_addoption(parser: pytest.Parser) -> None:
    engine_matrix.addoption(parser)


def pytest_configure(config: pytest.Config) -> None:
    """--engine NAME: point docker-py, the docker CLI and kernels at a second engine."""
    engine_matrix.configure(config)


def pytest_report_header(config: pytest.Config) -> str:
    return engine_matrix.header(config)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests that restart the Docker engine run after all others (they disturb them); on a
    second engine, what is known not to work there is marked (tests/engine_matrix.py)."""
    items.sort(key=lambda item: item.get_closest_marker("engine_restart") is not None)
    engine_matrix.apply_expectations(config, items)


def _is_docker_module(request: pytest.FixtureRequest) -> bool:
    marks = getattr(request.module, "pytestmark", [])
    if not isinstance(marks, list):
        marks = [marks]
    return any(getattr(m, "name", None) == "docker" for m in marks)


@pytest.fixture(scope="module", autouse=True)
def _no_leaked_containers_per_module(request: pytest.FixtureRequest) -> Iterator[None]:
    global _docker_used
    docker_module = _is_docker_module(request)
    _docker_used = _docker_used or docker_module
    kernels_before = set(KERNEL_PIDS)
    yield
    if docker_module:
        where = f"module {request.module.__name__}"
        try:
            _assert_no_stray_kernels(where)
        finally:  # (a stray kernel's container is checked too, once it is killed)
            _assert_no_leaks(where, KERNEL_PIDS - kernels_before)


@pytest.fixture(scope="session", autouse=True)
def _no_leaked_containers_at_end(_record_kernel_pids: None) -> Iterator[None]:
    yield
    if _docker_used:
        try:
            _assert_no_stray_kernels("the test run")
        finally:
            _assert_no_leaks("the test run", KERNEL_PIDS)


@pytest.fixture(scope="session")
def manager() -> Iterator[Any]:
    """One manager for the whole run; no background cleanup thread."""
    m = SandboxManager(cleanup_interval=0, runtime=os.environ.get("SANDBOX_RUNTIME") or None)
    try:
        yield m
    finally:
        m.close()
        m.backend.client.close()


@pytest.fixture
def make_session(manager: Any) -> Iterator[Callable[..., Any]]:
    """Factory: ``make_session(limits=None, **changes)`` opens a session closed afterwards.

    ``changes`` are parsed like ``Limits().changed(memory='256m', pids=64)``.
    """
    opened: list[str] = []

    def make(limits: Limits | None = None, **changes: object) -> Any:
        lim = limits or Limits()
        if changes:
            lim = lim.changed(**changes)
        s = manager.open_session(lim)
        opened.append(s.session_id)
        return s

    yield make
    for sid in opened:
        with contextlib.suppress(SessionNotFound):  # the test may have destroyed it
            manager.destroy_session(sid)


@pytest.fixture
def session(make_session: Callable[..., Any]) -> Any:
    """A fresh session with default Limits, destroyed after the test."""
    return make_session()


@pytest.fixture
def run_cell() -> Callable[..., tuple[CellResult, list[dict[str, Any]]]]:
    """``run_cell(session, code)`` runs a Python cell and returns (result, events)."""

    def run(s: Any, code: str, **kwargs: Any) -> tuple[CellResult, list[dict[str, Any]]]:
        events: list[dict[str, Any]] = []
        result = s.run(code, events.append, **kwargs).wait()
        return result, [e for e in events if e.get("type") != "done"]

    return run


@pytest.fixture
def wait_gone() -> Callable[..., bool]:
    """``wait_gone(backend, container_id, timeout=5)``: True once the engine no longer has it.

    Removal can still be finishing when close() returns: the agent exits on EOF and the
    engine's auto-remove races the explicit force-remove ("removal already in progress").
    """

    def wait(backend: Any, container_id: str, timeout: float = 5.0) -> bool:
        deadline = time.monotonic() + timeout
        while backend.state(container_id).exists:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True

    return wait


def dead_pid() -> int:
    """A pid that belonged to a process that has exited (and was reaped)."""
    for _ in range(10):
        p = subprocess.Popen(["true"])
        p.wait()
        if process_start(p.pid) is None:
            return p.pid
    raise RuntimeError("could not find a dead pid")


@pytest.fixture
def a_dead_pid() -> int:
    return dead_pid()
