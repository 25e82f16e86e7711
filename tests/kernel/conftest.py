"""Kernel-level fixtures: real kernels from the installed kernelspecs, driven by jupyter_client.

``KernelHandle`` starts a kernel (``sandbox`` or ``sandbox-node``) through a
``KernelManager``, runs cells and collects every IOPub message of a cell together with the
time it arrived. Kernels started here record their pid, and after each module no sandbox
container owned by one of those pids may remain (a leak is removed, then reported).
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from queue import Empty
from typing import Any

import pytest
from jupyter_client.manager import KernelManager

#: pids of every kernel process started by these tests (for the leak check).
KERNEL_PIDS: set[int] = set()
#: A sandbox container may take this long to go after its kernel is gone.
GONE_WITHIN_S = 10.0


# ----- containers ---------------------------------------------------------------------------
def _records() -> list[Any]:
    from sandbox_kernel.sandbox.docker_backend import DockerBackend

    backend = DockerBackend()
    try:
        return list(backend.list_owned())
    finally:
        backend.client.close()


def containers_of(pid: int) -> list[Any]:
    """Sandbox containers (label ``sandbox_kernel.session``) owned by process ``pid``."""
    from sandbox_kernel.sandbox.reaper import host_id, owner_of

    me = host_id()
    out = []
    for r in _records():
        o = owner_of(r)
        if o is not None and o.pid == pid and o.host == me:
            out.append(r)
    return out


def wait_until(cond: Callable[[], Any], timeout: float, interval: float = 0.1) -> Any:
    """Poll ``cond`` until it returns something truthy; return that, or the last falsy value."""
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


def docker(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=60,
                          check=check)


def _remove(container_id: str) -> None:
    docker("unpause", container_id, check=False)
    docker("rm", "-f", container_id, check=False)


# ----- messages -----------------------------------------------------------------------------
@dataclass
class Msg:
    type: str
    content: dict[str, Any]
    t: float  # seconds since the request was sent
    raw: dict[str, Any]


@dataclass
class Result:
    """Everything one execute_request produced."""

    reply: dict[str, Any]
    metadata: dict[str, Any]
    msgs: list[Msg]
    input_requests: list[dict[str, Any]] = field(default_factory=list)

    @property
    def status(self) -> str:
        return str(self.reply.get("status"))

    def of(self, *types: str) -> list[Msg]:
        return [m for m in self.msgs if m.type in types]

    def streams(self, name: str | None = None) -> list[Msg]:
        return [m for m in self.of("stream") if name is None or m.content["name"] == name]

    def text(self, name: str | None = None) -> str:
        return "".join(m.content["text"] for m in self.streams(name))

    @property
    def errors(self) -> list[dict[str, Any]]:
        return [m.content for m in self.of("error")]

    @property
    def error_text(self) -> str:
        return "\n".join(f"{e['ename']}: {e['evalue']}" for e in self.errors)

    def results(self) -> list[dict[str, Any]]:
        return [m.content["data"] for m in self.of("execute_result")]

    def displays(self) -> list[dict[str, Any]]:
        return [m.content["data"] for m in self.of("display_data")]

    def shown(self) -> str:
        """All text a user would see: streams, text/plain of results/displays, errors."""
        parts = []
        for m in self.msgs:
            if m.type == "stream":
                parts.append(m.content["text"])
            elif m.type in ("execute_result", "display_data", "update_display_data"):
                parts.append(str(m.content["data"].get("text/plain", "")))
            elif m.type == "error":
                parts.append(f"{m.content['ename']}: {m.content['evalue']}")
        return "\n".join(parts)

    def dump(self) -> str:
        """Every message as JSON text (for 'never appears anywhere' checks)."""
        return json.dumps([m.raw for m in self.msgs], default=str) + json.dumps(
            self.reply, default=str)

    def __str__(self) -> str:
        return f"<{self.status}: {self.shown()[:2000]!r}>"


# ----- kernels ------------------------------------------------------------------------------
class KernelHandle:
    """A running kernel (KernelManager + BlockingKernelClient) with a cell runner."""

    def __init__(self, name: str = "sandbox", *, cwd: str | os.PathLike[str] | None = None,
                 env: dict[str, str] | None = None,
                 extra_arguments: list[str] | None = None, transport: str = "tcp") -> None:
        self.name = name
        # IPC paths are per kernel: jupyter_client's default ("kernel-ipc") is shared.
        ipc = {"ip": os.path.join(tempfile.gettempdir(), f"sk-{uuid.uuid4().hex[:12]}")} \
            if transport == "ipc" else {}
        self.km = KernelManager(kernel_name=name, transport=transport, **ipc)
        kwargs: dict[str, Any] = {}
        if cwd is not None:
            kwargs["cwd"] = str(cwd)
        if env is not None:
            kwargs["env"] = env
        if extra_arguments:
            kwargs["extra_arguments"] = list(extra_arguments)
        self.km.start_kernel(**kwargs)
        self.pid: int = self.km.provisioner.process.pid  # type: ignore[union-attr]
        KERNEL_PIDS.add(self.pid)
        self.kc = self.km.client()
        self.kc.start_channels()
        try:
            self.kc.wait_for_ready(timeout=60)
        except BaseException:
            self.close()
            raise
        self._closed = False

    # -- running cells --
    def execute(self, code: str, *, timeout: float = 90, allow_stdin: bool = False,
                answers: list[str] | None = None, silent: bool = False,
                store_history: bool = True, user_expressions: dict[str, str] | None = None,
                on_msg: Callable[[Msg], None] | None = None) -> Result:
        """Run a cell; answer input_requests from ``answers`` (in order)."""
        start = time.monotonic()
        msg_id = self.kc.execute(code, silent=silent, store_history=store_history,
                            allow_stdin=allow_stdin, user_expressions=user_expressions or {},
                            stop_on_error=False)
        msgs: list[Msg] = []
        inputs: list[dict[str, Any]] = []
        pending = list(answers or [])
        idle = False
        reply: dict[str, Any] | None = None
        deadline = start + timeout
        while not (idle and reply is not None):
            if time.monotonic() > deadline:
                with contextlib.suppress(Exception):  # do not leave the kernel busy
                    self.km.interrupt_kernel()
                raise AssertionError(f"cell did not finish within {timeout} s: {code[:80]!r}; "
                                     f"got so far: {[(m.type, m.content) for m in msgs][-10:]}")
            if allow_stdin:
                self._answer_stdin(inputs, pending)
            if reply is None:
                reply = self._shell_reply(msg_id)
            if idle:
                time.sleep(0.005)
                continue
            idle = self._take_iopub(msg_id, start, msgs, on_msg)
        assert reply is not None
        return Result(reply["content"], reply.get("metadata", {}), msgs, inputs)

    def _answer_stdin(self, inputs: list[dict[str, Any]], pending: list[str]) -> None:
        try:
            req = self.kc.get_stdin_msg(timeout=0.001)
        except Empty:
            return
        inputs.append(req["content"])
        self.kc.input(pending.pop(0) if pending else "")

    def _shell_reply(self, msg_id: str) -> dict[str, Any] | None:
        try:
            r = self.kc.get_shell_msg(timeout=0.001)
        except Empty:
            return None
        return r if r["parent_header"].get("msg_id") == msg_id else None

    def _take_iopub(self, msg_id: str, start: float, msgs: list[Msg],
                    on_msg: Callable[[Msg], None] | None) -> bool:
        """One IOPub message of this request into `msgs`; True once the kernel is idle."""
        try:
            m = self.kc.get_iopub_msg(timeout=0.02)
        except Empty:
            return False
        if m["parent_header"].get("msg_id") != msg_id:
            return False
        mt = m["msg_type"]
        if mt == "status":
            return bool(m["content"]["execution_state"] == "idle")
        if mt != "execute_input":
            msg = Msg(mt, m["content"], time.monotonic() - start, m)
            msgs.append(msg)
            if on_msg is not None:
                on_msg(msg)
        return False

    def until_idle(self, msg_id: str, timeout: float = 30) -> list[Msg]:
        """The IOPub messages a request caused, up to its idle status (any shell message)."""
        start, msgs = time.monotonic(), []
        while not self._take_iopub(msg_id, start, msgs, None):
            if time.monotonic() - start > timeout:
                raise AssertionError(f"no idle for {msg_id}: {[(m.type, m.content) for m in msgs]}")
        return msgs

    def ok(self, code: str, **kwargs: Any) -> Result:
        """Run a cell that must succeed."""
        r = self.execute(code, **kwargs)
        assert r.status == "ok", f"cell failed: {code[:200]!r} -> {r}"
        return r

    def value(self, expr: str) -> str:
        """text/plain of a Python expression's execute_result."""
        r = self.ok(expr)
        assert r.results(), f"no execute_result for {expr!r}: {r}"
        return str(r.results()[-1]["text/plain"])

    def request(self, method: str, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """A shell request (complete, inspect, is_complete, history...) and its reply content."""
        msg_id = getattr(self.kc, method)(*args, **kwargs)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            reply = self.kc.get_shell_msg(timeout=60)
            if reply["parent_header"].get("msg_id") == msg_id:
                return dict(reply["content"])
        raise AssertionError(f"no reply to {method}")

    def restart(self) -> None:
        """km.restart_kernel(): a new kernel process on the same connection."""
        self.km.restart_kernel(now=False)
        self.pid = self.km.provisioner.process.pid  # type: ignore[union-attr]
        KERNEL_PIDS.add(self.pid)
        self.kc.wait_for_ready(timeout=60)

    def container(self) -> Any:
        """The one sandbox container this kernel owns right now."""
        found = wait_until(lambda: containers_of(self.pid), 30)
        assert len(found) == 1, f"kernel {self.pid} owns {len(found)} containers: {found}"
        return found[0]

    def alive(self) -> bool:
        return bool(self.km.is_alive())

    def usage(self) -> dict[str, Any]:
        """The kernel's usage_reply (jupyter-resource-usage's panel asks on control)."""
        msg = self.kc.session.msg("usage_request", {})
        self.kc.control_channel.send(msg)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            reply = self.kc.control_channel.get_msg(timeout=30)
            if reply["parent_header"].get("msg_id") == msg["header"]["msg_id"]:
                assert reply["msg_type"] == "usage_reply"
                return dict(reply["content"])
        raise AssertionError("no usage_reply")

    def close(self) -> None:
        if getattr(self, "_closed", False):
            return
        self._closed = True
        try:
            if self.km.has_kernel:
                self.km.shutdown_kernel(now=not self.km.is_alive())
        finally:
            self.kc.stop_channels()


def check_no_leaks(pids: set[int], where: str) -> None:
    """No container of these kernel pids may remain (after a grace); remove and fail if so."""
    if not pids:
        return
    from sandbox_kernel.sandbox.reaper import host_id, owner_of

    me = host_id()

    def leaked() -> list[Any]:
        return [r for r in _records() if (o := owner_of(r)) is not None and o.host == me
                and o.pid in pids]

    rows = leaked()
    if rows:
        rows = [] if wait_until(lambda: not leaked(), GONE_WITHIN_S) else leaked()
    if rows:
        for r in rows:
            _remove(r.id)
        listing = "\n".join(f"  {r.id[:12]} {r.name} ({r.status})" for r in rows)
        pytest.fail(f"{where} leaked {len(rows)} kernel sandbox container(s):\n{listing}",
                    pytrace=False)


@pytest.fixture(scope="module", autouse=True)
def _no_leaked_kernel_containers(request: pytest.FixtureRequest) -> Iterator[None]:
    before = set(KERNEL_PIDS)
    yield
    check_no_leaks(KERNEL_PIDS - before, f"module {request.module.__name__}")


@pytest.fixture(scope="module")
def k() -> Iterator[KernelHandle]:
    """A sandbox kernel shared by a module's tests (a module that needs options has its own)."""
    handle = KernelHandle("sandbox")
    try:
        yield handle
    finally:
        handle.close()


@pytest.fixture
def start_kernel() -> Iterator[Callable[..., KernelHandle]]:
    """Factory for dedicated kernels, each shut down (and its containers checked) after."""
    handles: list[KernelHandle] = []

    def start(name: str = "sandbox", **kwargs: Any) -> KernelHandle:
        h = KernelHandle(name, **kwargs)
        handles.append(h)
        return h

    yield start
    for h in handles:
        h.close()
    check_no_leaks({h.pid for h in handles}, "test")


@pytest.fixture(scope="module")
def kernel_cwd(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("kernel-cwd")
