"""Child processes of the agent: interpreter workers and one-shot shell commands.

Both are plain records of pipes and pids; the supervisor's event loop owns all policy.
"""

from __future__ import annotations

import codecs
import fcntl
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from . import procs
from .protocol import LineBuffer

_PKG_PARENT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _pidfd(pid: int) -> int | None:
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):
        return None


def _raise_oom_score(pid: int) -> None:
    """Make the OOM killer pick user processes before the agent (raising needs no privilege)."""
    try:
        with open(f"/proc/{pid}/oom_score_adj", "w") as f:
            f.write("1000")
    except OSError:
        pass


def widen_pipe(fd: int, size: int = 1 << 20) -> None:
    """Let a big output frame pass in one write instead of 16 handoffs of 64 KiB."""
    try:
        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, size)
    except (AttributeError, OSError):
        pass


def decode_stream() -> codecs.IncrementalDecoder:
    return codecs.getincrementaldecoder("utf-8")("replace")


@dataclass
class Run:
    """A cell running in a worker, with the limits the supervisor enforces on it."""

    id: int
    started: float
    deadline: float | None
    cpu_budget: float | None
    oom_start: int
    output_cap: int
    cpu_start: float | None = None  # the worker's CPU seconds when the cell began
    verdict: str | None = None
    interrupted: bool = False
    kill_at: float | None = None
    killed: bool = False
    peak_memory: int = 0
    warned_memory: bool = False
    fd_chars: int = 0
    fd_dropped: int = 0
    timeout_s: float | None = None
    cpu_s: float | None = None


@dataclass
class Worker:
    """A persistent interpreter process and its four pipes."""

    kind: str
    proc: subprocess.Popen[bytes]
    req_w: int
    ev_r: int
    pidfd: int | None
    outbox: bytearray = field(default_factory=bytearray)
    events: LineBuffer = field(default_factory=LineBuffer)
    decoders: dict[int, codecs.IncrementalDecoder] = field(default_factory=dict)
    run: Run | None = None
    last_run_id: int = 0
    stderr_tail: bytearray = field(default_factory=bytearray)
    ready: bool = False
    exited: bool = False

    @property
    def pid(self) -> int:
        return self.proc.pid

    @classmethod
    def spawn(cls, kind: str, argv: list[str], env: dict[str, str], cwd: str) -> Worker:
        req_r, req_w = os.pipe()
        ev_r, ev_w = os.pipe()
        widen_pipe(ev_w)
        env = dict(env)
        env["SANDBOX_WORKER_FDS"] = f"{req_r},{ev_w}"
        env["PYTHONPATH"] = _PKG_PARENT
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            pass_fds=(req_r, ev_w), start_new_session=True, cwd=cwd, env=env,
        )
        os.close(req_r)
        os.close(ev_w)
        for fd in (req_w, ev_r):
            os.set_blocking(fd, False)
        assert proc.stdout is not None and proc.stderr is not None
        for stream in (proc.stdout, proc.stderr):
            os.set_blocking(stream.fileno(), False)
        _raise_oom_score(proc.pid)
        w = cls(kind=kind, proc=proc, req_w=req_w, ev_r=ev_r, pidfd=_pidfd(proc.pid))
        w.decoders = {proc.stdout.fileno(): decode_stream(), proc.stderr.fileno(): decode_stream()}
        return w

    def output_fds(self) -> dict[int, str]:
        assert self.proc.stdout is not None and self.proc.stderr is not None
        return {self.proc.stdout.fileno(): "stdout", self.proc.stderr.fileno(): "stderr"}

    def kill(self) -> None:
        """Kill the worker and everything in its process group."""
        procs.kill_group(self.proc.pid, signal.SIGKILL)
        try:
            self.proc.kill()
        except OSError:
            pass

    def close(self) -> None:
        for fd in (self.req_w, self.ev_r, self.pidfd):
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


def python_worker_argv() -> list[str]:
    return [sys.executable, "-m", "sandbox_kernel.agent.python_worker"]


def node_worker_argv(memory_limit: int | None) -> list[str]:
    """Node with a V8 heap below the container's memory, so a heap bomb fails cleanly."""
    runner = os.path.join(os.path.dirname(os.path.abspath(__file__)), "node_runner.js")
    argv = ["node"]
    if memory_limit:
        argv.append(f"--max-old-space-size={max(32, int(memory_limit * 0.75) >> 20)}")
    return [*argv, runner]


@dataclass
class Command:
    """A one-shot shell command (the seed's executeCommand), tagged for complete cleanup."""

    id: int
    proc: subprocess.Popen[bytes]
    token: str
    started: float
    deadline: float | None
    oom_start: int
    cap: int
    stream: bool
    pidfd: int | None
    out: dict[int, bytearray] = field(default_factory=dict)
    names: dict[int, str] = field(default_factory=dict)
    dropped: int = 0
    open_fds: set[int] = field(default_factory=set)
    decoders: dict[int, codecs.IncrementalDecoder] = field(default_factory=dict)
    exit_status: int | None = None
    exited_at: float | None = None
    timed_out: bool = False
    interrupted: bool = False

    @classmethod
    def spawn(cls, cid: int, argv: list[str], env: dict[str, str], cwd: str,
              timeout: float | None, cap: int, stream: bool, oom_start: int) -> Command:
        token = f"cmd-{cid}-{os.urandom(4).hex()}"
        env = dict(env)
        env[procs.TASK_VAR] = token
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            start_new_session=True, cwd=cwd, env=env,
        )
        _raise_oom_score(proc.pid)
        now = time.monotonic()
        c = cls(id=cid, proc=proc, token=token, started=now,
                deadline=now + timeout if timeout else None, oom_start=oom_start, cap=cap,
                stream=stream, pidfd=_pidfd(proc.pid))
        assert proc.stdout is not None and proc.stderr is not None
        for s, name in ((proc.stdout, "stdout"), (proc.stderr, "stderr")):
            fd = s.fileno()
            os.set_blocking(fd, False)
            c.out[fd] = bytearray()
            c.names[fd] = name
            c.open_fds.add(fd)
            c.decoders[fd] = decode_stream()
        return c

    def kill_all(self) -> None:
        procs.kill_group(self.proc.pid, signal.SIGKILL)
        procs.kill_tagged(self.token)

    def result(self, oom_now: int) -> dict[str, Any]:
        status = self.exit_status if self.exit_status is not None else -1
        code = os.waitstatus_to_exitcode(status) if status >= 0 else -1
        if code < 0:
            code = 128 - code
        texts = {self.names[fd]: buf.decode("utf-8", "replace") for fd, buf in self.out.items()}
        return {
            "exit_code": code,
            "stdout": texts.get("stdout", ""),
            "stderr": texts.get("stderr", ""),
            "timed_out": self.timed_out,
            "interrupted": self.interrupted,
            "oom_killed": oom_now > self.oom_start,
            "duration_ms": round(((self.exited_at or time.monotonic()) - self.started) * 1000, 3),
            "dropped_bytes": self.dropped,
        }
