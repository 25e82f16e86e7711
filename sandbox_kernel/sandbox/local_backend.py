"""A backend that runs the agent as a local subprocess: the fast test tier, no isolation.

The agent, the contract, the channel, the session and the kernel's cell path are the real
ones; only the container is missing (no cgroups, no separate uid, files under a temporary
directory). Never a way to run untrusted code: it exists for tests and development.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

from ..agent import procs
from ..errors import ConfigError, SandboxError, SessionGone
from .backend import (
    LABEL_SESSION,
    AgentStream,
    Backend,
    ContainerRecord,
    ContainerState,
    RuntimeTraits,
)
from .spec import ContainerSpec, Limits

_PKG_PARENT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@dataclass
class _Box:
    spec: ContainerSpec
    root: str
    name: str
    proc: subprocess.Popen[bytes] | None = None
    bound: bool = False  # a LocalStream owns the output pipes


class LocalStream(AgentStream):
    """The agent subprocess's pipes, read and written without blocking the loop."""

    def __init__(self, box: _Box) -> None:
        self.box = box
        self.queue: asyncio.Queue[tuple[int, bytes]] | None = None
        self.open_fds = 0
        self.closed = False

    def _bind(self) -> asyncio.Queue[tuple[int, bytes]]:
        if self.queue is None:
            proc = self.box.proc
            if proc is None or proc.stdout is None or proc.stderr is None:
                raise SessionGone("the local sandbox was never started")
            loop = asyncio.get_running_loop()
            self.queue = asyncio.Queue()
            self.box.bound = True
            for stream, pipe in ((1, proc.stdout), (2, proc.stderr)):
                fd = os.dup(pipe.fileno())
                pipe.close()
                os.set_blocking(fd, False)
                loop.add_reader(fd, self._on_readable, loop, stream, fd)
                self.open_fds += 1
        return self.queue

    def _on_readable(self, loop: asyncio.AbstractEventLoop, stream: int, fd: int) -> None:
        try:
            data = os.read(fd, 1 << 20)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        assert self.queue is not None
        if data:
            self.queue.put_nowait((stream, data))
            return
        loop.remove_reader(fd)
        os.close(fd)
        self.open_fds -= 1
        if self.open_fds == 0:
            self.queue.put_nowait((0, b""))

    async def read(self) -> tuple[int, bytes]:
        return await self._bind().get()

    async def write(self, data: bytes) -> None:
        self._bind()
        proc = self.box.proc
        if self.closed or proc is None or proc.stdin is None:
            raise SessionGone("the sandbox's connection is closed")
        fd = proc.stdin.fileno()
        os.set_blocking(fd, False)
        view = memoryview(data)
        while view:
            try:
                view = view[os.write(fd, view):]
            except BlockingIOError:
                await asyncio.sleep(0.001)
            except OSError as exc:
                raise SessionGone("the sandbox's connection is closed") from exc

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        proc = self.box.proc
        if proc is not None and proc.stdin is not None:
            try:
                proc.stdin.close()
            except OSError:
                pass


class LocalBackend(Backend):
    """Agents as subprocesses of this process, each with its own temporary directory."""

    requires_separation = False

    def __init__(self, agent_argv: list[str] | None = None, *, direct: bool = True) -> None:
        self.agent_argv = agent_argv or [sys.executable, "-m", "sandbox_kernel.agent"]
        self.direct = direct  # offer the agent a direct link (sandbox/direct.py)
        self._boxes: dict[str, _Box] = {}
        self._lock = threading.Lock()

    def check(self, image: str) -> None:
        return None

    def check_runtime(self, runtime: str | None) -> RuntimeTraits:
        if runtime:
            raise ConfigError(f"the local test backend has no container runtimes ({runtime!r})")
        return RuntimeTraits(kind="local", live_update=False, cgroup_files=False)

    def image_labels(self, image: str) -> dict[str, str]:
        return {}

    def create(self, spec: ContainerSpec, started: bool = False) -> str:
        root = tempfile.mkdtemp(prefix="sandbox-local-")
        for d in ("sandbox", "tmp", "packages"):
            os.mkdir(os.path.join(root, d), 0o700)
        os.mkdir(os.path.join(root, "link"), 0o711)
        cid = os.path.basename(root)
        with self._lock:
            self._boxes[cid] = _Box(spec, root, spec.name)
        if started:
            self.start(cid)
        return cid

    def _box(self, cid: str) -> _Box:
        with self._lock:
            box = self._boxes.get(cid)
        if box is None:
            raise SessionGone("the local sandbox no longer exists")
        return box

    def link_dir(self, container_id: str, session_id: str) -> tuple[Path, str] | None:
        if not self.direct:
            return None
        path = Path(self._box(container_id).root) / "link"
        return path, str(path)

    def attach(self, container_id: str) -> AgentStream:
        return LocalStream(self._box(container_id))

    def start(self, container_id: str) -> None:
        box = self._box(container_id)
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8",
               **box.spec.env, "PYTHONPATH": _PKG_PARENT, "HOME": f"{box.root}/tmp/home",
               "SANDBOX_AGENT_ROOTS": f"/sandbox={box.root}/sandbox:/tmp={box.root}/tmp",
               "SANDBOX_AGENT_WORKDIR": f"{box.root}/sandbox", "SANDBOX_AGENT_MEASURE": "proc",
               "SANDBOX_PACKAGES_DIR": f"{box.root}/packages",
               "NODE_PATH": f"{box.root}/packages/node/node_modules",
               "MPLBACKEND": "agg"}
        box.proc = subprocess.Popen(self.agent_argv,
                                    stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, env=env, cwd=box.root,
                                    start_new_session=True)

    def rename(self, container_id: str, name: str) -> bool:
        with self._lock:
            box = self._boxes.get(container_id)
            if box is None or any(b.name == name for b in self._boxes.values()):
                return False
            box.name = name
            return True

    def update(self, container_id: str, limits: Limits) -> None:
        raise SandboxError("the local test backend has no cgroups: memory, CPU and process "
                           "limits cannot change")

    def state(self, container_id: str) -> ContainerState:
        with self._lock:
            box = self._boxes.get(container_id)
        if box is None:
            return ContainerState(exists=False)
        if box.proc is None:
            return ContainerState(exists=True, status="created")
        code = box.proc.poll()
        return ContainerState(exists=True, status="running" if code is None else "exited",
                              exit_code=code)

    def remove(self, container_id: str) -> None:
        with self._lock:
            box = self._boxes.pop(container_id, None)
        if box is None:
            return
        proc = box.proc
        if proc is not None and proc.poll() is None:
            tree = [p.pid for p in procs.descendants(proc.pid)]
            if proc.stdin is not None:
                proc.stdin.close()
            try:
                proc.wait(1)  # the agent kills what it started when its stdin closes
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                procs.kill_all(tree)
                proc.wait()
        if proc is not None:
            for stream in (proc.stdin, *(() if box.bound else (proc.stdout, proc.stderr))):
                if stream is not None:
                    stream.close()
        shutil.rmtree(box.root, ignore_errors=True)

    def list_owned(self, all_states: bool = True) -> list[ContainerRecord]:
        with self._lock:
            boxes = dict(self._boxes)
        return [ContainerRecord(id=cid, name=b.name, status=self.state(cid).status,
                                labels=dict(b.spec.labels)) for cid, b in boxes.items()
                if LABEL_SESSION in b.spec.labels]

    def exec_in(self, container_id: str, argv: list[str]) -> tuple[int, bytes]:
        box = self._box(container_id)
        done = subprocess.run(argv, capture_output=True, cwd=f"{box.root}/sandbox", check=False)
        return done.returncode, done.stdout + done.stderr

    def versions(self) -> dict[str, str]:
        return {"engine": "local (no isolation)", "api": "-", "cgroup": "-", "runtime": "-",
                "security": "-", "kernel": os.uname().release}
