"""One-shot commands (the library's execute_command and %%bash cells) as the worker uid.

A command ends when its process exits; whatever it started is killed then, found by
ancestry and start time, never by anything the processes control.
"""

from __future__ import annotations

import codecs
import os
import signal
import subprocess
import time
from collections.abc import Callable

from . import procs
from .frames import Frame
from .loop import Loop, Timer, sleep
from .measure import Meter
from .privilege import Identity
from .spawn import prefer_oom, spawn

#: After the command exits, how long its output pipes may stay open (background writers).
_LINGER = 0.05


class Command:
    """One running command and what the agent tracks of it until its result is sent."""

    __slots__ = ("cap", "decoders", "dropped", "exited_at", "fds", "id", "interrupted",
                 "oom_base", "out", "proc", "start_tick", "started", "status", "stream",
                 "timed_out", "timer")

    def __init__(self, *, id: int, proc: subprocess.Popen[bytes], stream: bool, cap: int,
                 oom_base: int, start_tick: int) -> None:
        self.id = id
        self.proc = proc  # kept so subprocess never reaps it behind our back
        self.stream, self.cap, self.oom_base, self.start_tick = stream, cap, oom_base, start_tick
        self.started = time.monotonic()
        self.fds: dict[int, str] = {}
        self.out = {"stdout": bytearray(), "stderr": bytearray()}
        self.decoders: dict[str, codecs.IncrementalDecoder] = {}
        self.dropped = 0
        self.status: int | None = None
        self.exited_at: float | None = None
        self.timed_out = False
        self.interrupted = False
        self.timer: Timer | None = None

    @property
    def pid(self) -> int:
        return self.proc.pid


class Commands:
    """The agent's running commands."""

    def __init__(self, loop: Loop, send: Callable[[Frame], None], meter: Meter,
                 ident: Identity, spare: Callable[[int], procs.Spare]) -> None:
        self.send = send
        self.meter = meter
        self.ident = ident
        self.spare = spare
        self.loop = loop
        self.running: dict[int, Command] = {}
        self.paused = False

    def roots(self) -> frozenset[int]:
        return frozenset(c.pid for c in self.running.values())

    def start(self, req: Frame, env: dict[str, str], cwd: str) -> int | None:
        """Spawn; the caller registers the pid for its exit. None if it could not start."""
        argv = req["argv"]
        if not argv:
            self._refuse(req["id"], 2, "exec needs a command")
            return None
        env = {**env, **{k: v for k, v in req["env"].items() if k and "=" not in k
                         and "\0" not in k + v}}
        start_tick = procs.now_tick()  # before the spawn: what it forks at once counts too
        try:
            proc = spawn(argv, env, cwd, self.ident)
        except OSError as exc:
            self._refuse(req["id"], 127, f"{argv[0]}: {exc.strerror}")
            return None
        assert proc.stdout is not None and proc.stderr is not None
        prefer_oom(proc.pid)
        c = Command(id=req["id"], proc=proc, stream=req["stream"], cap=req["output_cap"],
                    oom_base=self.meter.oom_kills(), start_tick=start_tick)
        for stream, name in ((proc.stdout, "stdout"), (proc.stderr, "stderr")):
            fd = os.dup(stream.fileno())
            stream.close()
            os.set_blocking(fd, False)
            c.fds[fd] = name
            if not self.paused:
                self.loop.add_reader(fd, self._on_output, c, fd)
        c.timer = self.loop.call_later(req["timeout"], self._on_timeout, c)
        self.running[c.id] = c
        return c.pid

    def _refuse(self, rid: int, code: int, text: str) -> None:
        self.send({"id": rid, "type": "exited", "exit_code": code, "stdout": "",
                   "stderr": text, "duration_ms": 0.0, "timed_out": False,
                   "interrupted": False, "oom_killed": False, "dropped_bytes": 0})

    def pause(self, paused: bool) -> None:
        self.paused = paused
        for c in self.running.values():
            for fd in c.fds:
                if paused:
                    self.loop.remove_reader(fd)
                else:
                    self.loop.add_reader(fd, self._on_output, c, fd)

    def _on_output(self, c: Command, fd: int) -> bool:
        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            return False
        except OSError:
            data = b""
        if not data:
            self.loop.remove_reader(fd)
            os.close(fd)
            del c.fds[fd]
            self._maybe_finish(c)
            return False
        name = c.fds[fd]
        buf = c.out[name]
        room = c.cap - len(c.out["stdout"]) - len(c.out["stderr"])
        kept = data[: max(room, 0)]
        c.dropped += len(data) - len(kept)
        buf += kept
        if c.stream and kept:
            dec = c.decoders.setdefault(name, codecs.getincrementaldecoder("utf-8")("replace"))
            text = dec.decode(kept)
            if text:
                self.send({"id": c.id, "type": "stream", "name": name, "text": text})
        return True

    def _on_timeout(self, c: Command) -> None:
        c.timed_out = True
        self._kill(c)

    def interrupt(self, target: int | None) -> bool:
        for c in self.running.values():
            if target is None or c.id == target:
                c.interrupted = True
                self._kill(c)
                return True
        return False

    def _kill(self, c: Command) -> list[int]:
        """Kill the command's process group and all it started; the pids signalled."""
        try:
            os.killpg(c.pid, signal.SIGKILL)
        except OSError:
            pass
        left = [p.pid for p in procs.started_since(os.getpid(), c.start_tick, self.spare(c.pid))]
        procs.kill_all(left)
        return left

    def on_exit(self, pid: int, status: int) -> None:
        for c in self.running.values():
            if c.pid == pid:
                c.proc.returncode = os.waitstatus_to_exitcode(status)
                c.status = status
                c.exited_at = time.monotonic()
                self._maybe_finish(c)
                self.loop.call_later(_LINGER, self._maybe_finish, c, True)
                return

    def _maybe_finish(self, c: Command, linger_over: bool = False) -> None:
        if c.status is None or c.id not in self.running or (c.fds and not linger_over):
            return
        for fd in list(c.fds):
            while fd in c.fds and self._on_output(c, fd):
                pass
            if fd in c.fds:
                self.loop.remove_reader(fd)
                os.close(fd)
                del c.fds[fd]
        del self.running[c.id]
        if c.timer is not None:
            c.timer.cancel()
        left = self._kill(c)  # whatever it left behind
        code = os.waitstatus_to_exitcode(c.status)
        self._send_when_reaped(c, left, {
            "id": c.id, "type": "exited", "exit_code": 128 - code if code < 0 else code,
            "stdout": c.out["stdout"].decode("utf-8", "replace"),
            "stderr": c.out["stderr"].decode("utf-8", "replace"),
            "duration_ms": round(((c.exited_at or time.monotonic()) - c.started) * 1000, 3),
            "timed_out": c.timed_out, "interrupted": c.interrupted,
            "oom_killed": self.meter.oom_kills() > c.oom_base, "dropped_bytes": c.dropped})

    def _send_when_reaped(self, c: Command, killed: list[int], frame: Frame) -> None:
        """The result once what the command left is gone and reaped (until then it counts
        against the pids limit), so the next command can start; a few more rounds catch
        what was forking meanwhile."""
        if not killed:
            self.send(frame)
            return

        async def later() -> None:
            found = killed
            for _ in range(20):
                await sleep(0.01)
                found = [p.pid for p in procs.started_since(os.getpid(), c.start_tick,
                                                            self.spare(c.pid))]
                if not found:
                    break
                procs.kill_all(found)
                killed.extend(found)
            await procs.reaped(killed)
            self.send(frame)

        self.loop.create_task(later())
