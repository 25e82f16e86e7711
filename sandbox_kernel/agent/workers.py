"""Interpreter worker processes: started as the worker uid, fed requests, read for events.

A worker is untrusted: its frames are checked against the contract and only those the
agent expects are used. Each Python cell gets fresh pipes for its events and for the fd-level
output of everything it starts (passed with SCM_RIGHTS), so output from a process a cell
left running can never be taken for a later cell's (docs/architecture.md, "Attribution").
"""

from __future__ import annotations

import array
import functools
import os
import signal
import socket
from collections.abc import Callable

from . import procs
from .frames import Frame, FrameError, FrameReader, encode
from .loop import Loop
from .privilege import Identity, as_worker
from .protocol import WORKER_EVENTS
from .spawn import PKG_PARENT, spawn, widen

#: Finished runs whose pipes a leftover process still holds; the oldest are closed past this.
_MAX_STALE = 64


class Pipes:
    """The agent's read ends of one run's pipes (-1 once closed): events, stdout, stderr."""

    __slots__ = ("events", "reader", "stderr", "stdout")

    def __init__(self, events: int, stdout: int, stderr: int) -> None:
        self.events, self.stdout, self.stderr = events, stdout, stderr
        self.reader = FrameReader(WORKER_EVENTS)

    def fds(self) -> list[int]:
        return [fd for fd in (self.events, self.stdout, self.stderr) if fd >= 0]


class Worker:
    """One persistent interpreter: requests go down a pipe, frames come back up."""

    def __init__(self, loop: Loop, kind: str, argv: list[str], env: dict[str, str], cwd: str,
                 ident: Identity, on_frame: Callable[[Worker, Frame], None],
                 on_output: Callable[[Worker, str, bytes], None],
                 log: Callable[[str], None]) -> None:
        self.kind = kind
        self.on_frame = on_frame
        self.on_output = on_output
        self.log = log
        self.loop = loop
        with as_worker(ident):  # the worker's own (Node reopens them through /proc)
            ctrl_r, self.ctrl_w = os.pipe()
            self.reply_r, reply_w = os.pipe()
        widen(reply_w)
        passed = [ctrl_r, reply_w]
        self.fd_sock: socket.socket | None = None
        theirs: socket.socket | None = None
        if kind == "python":
            self.fd_sock, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            passed.append(theirs.fileno())
        env = {**env, "SANDBOX_WORKER_FDS": ",".join(map(str, passed)),
               "PYTHONPATH": PKG_PARENT}
        try:
            self.proc = spawn(argv, env, cwd, ident, tuple(passed))
        finally:
            for fd in (ctrl_r, reply_w):
                os.close(fd)
            if theirs is not None:
                theirs.close()
        assert self.proc.stdout is not None and self.proc.stderr is not None
        self.pid = self.proc.pid
        self.stat = procs.StatFile(self.pid)
        self.outbox = bytearray()
        self.events = FrameReader(WORKER_EVENTS)
        self.ready = False
        self.exited = False
        self.version = ""
        self.stderr_tail = bytearray()
        self.kill_reason = ""
        self.current: Pipes | None = None
        self.spare: tuple[Pipes, list[int]] | None = None  # the next run's, made early
        self.stale: list[Pipes] = []
        # Our own copies: the Popen's file objects would close these numbers again when they
        # are collected, by then perhaps another pipe's.
        base = Pipes(-1, os.dup(self.proc.stdout.fileno()), os.dup(self.proc.stderr.fileno()))
        self.proc.stdout.close()
        self.proc.stderr.close()
        self.base = base
        for fd in (self.ctrl_w, self.reply_r, *base.fds()):
            os.set_blocking(fd, False)
        self._watch(self.reply_r, self._on_reply_pipe)
        for fd in base.fds():
            self._watch(fd, functools.partial(self._on_output, base, fd))

    # ----- requests -------------------------------------------------------------------
    def send(self, frame: Frame) -> None:
        self.send_all([frame])

    def send_all(self, frames: list[Frame]) -> None:
        if self.exited:
            return
        first = not self.outbox
        for frame in frames:
            self.outbox += encode(frame)
        if first:
            self._flush()

    def _flush(self) -> None:
        try:
            del self.outbox[: os.write(self.ctrl_w, self.outbox)]
        except BlockingIOError:
            pass
        except OSError:
            self.outbox.clear()
        if self.outbox:
            self.loop.add_writer(self.ctrl_w, self._on_writable)

    def _on_writable(self) -> None:
        self.loop.remove_writer(self.ctrl_w)
        self._flush()

    def start_run(self, frame: Frame, after: Frame) -> None:
        """Send a run with fresh pipes (Python), and `after` behind it in the same write."""
        self.retire()
        if self.fd_sock is None:
            self.send_all([{**frame, "fds": 0}, after])
            return
        pipes, ends = self.spare or self._new_pipes()
        self.spare = None
        try:
            self.fd_sock.sendmsg([b"R"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS,
                                           array.array("i", ends))])
        finally:
            for w in ends:
                os.close(w)
        self.current = pipes
        self.send_all([{**frame, "fds": 3}, after])

    def prepare(self) -> None:
        """Make the next run's pipes between cells, off that run's critical path. They
        stay the agent's alone until that run's request passes their write ends."""
        if self.spare is None and self.fd_sock is not None and not self.exited:
            try:
                self.spare = self._new_pipes()
            except OSError:  # out of descriptors: start_run tries again, and says so
                pass

    def _new_pipes(self) -> tuple[Pipes, list[int]]:
        pairs = [os.pipe() for _ in range(3)]
        for r, w in pairs:
            widen(w)
            os.set_blocking(r, False)
        pipes = Pipes(pairs[0][0], pairs[1][0], pairs[2][0])
        self._watch(pipes.events, functools.partial(self._on_events, pipes))
        for fd in (pipes.stdout, pipes.stderr):
            self._watch(fd, functools.partial(self._on_output, pipes, fd))
        return pipes, [w for _, w in pairs]

    def retire(self) -> None:
        """The current run is over: its pipes are drained into nothing from now on."""
        if self.current is not None:
            self.stale.append(self.current)
            self.current = None
        while len(self.stale) > _MAX_STALE:
            self._close(self.stale.pop(0))

    def drain(self) -> None:
        """Read what the current run's pipes already hold (output written before `done`)."""
        pipes = self.current if self.current is not None else self.base
        for fd in (pipes.stdout, pipes.stderr):
            for _ in range(16):  # bounded: a process may still be writing
                if fd < 0 or not self._on_output(pipes, fd):
                    break

    # ----- reading ----------------------------------------------------------------------
    def _watch(self, fd: int, callback: Callable[[], object]) -> None:
        self.loop.add_reader(fd, callback)

    def pause(self, paused: bool) -> None:
        """Stop (or restart) reading output while the host link is backed up."""
        live = [self.current] if self.current is not None else []
        for pipes in [self.base, *self.stale, *live]:  # stale ones too: late writers wait
            for fd in pipes.fds():
                if paused:
                    self.loop.remove_reader(fd)
                elif fd == pipes.events:
                    self._watch(fd, functools.partial(self._on_events, pipes))
                else:
                    self._watch(fd, functools.partial(self._on_output, pipes, fd))

    def _read(self, fd: int) -> bytes | None:
        try:
            return os.read(fd, 1 << 20)
        except BlockingIOError:
            return None
        except OSError:
            return b""

    def _on_reply_pipe(self) -> None:
        data = self._read(self.reply_r)
        if data is None:
            return
        if not data:
            self.loop.remove_reader(self.reply_r)
            return
        self._frames(self.events, data)

    def _frames(self, reader: FrameReader, data: bytes) -> None:
        if self.kill_reason:  # already condemned: the first breach is the one reported
            return
        try:
            frames = reader.feed(data)
        except FrameError as exc:
            for frame in exc.frames:
                self.on_frame(self, frame)
            self.kill_reason = f"the {self.kind} interpreter sent an invalid frame ({exc})"
            self.log(f"{self.kill_reason}; restarting it")
            self.kill()
            return
        for frame in frames:
            self.on_frame(self, frame)

    def _on_events(self, pipes: Pipes) -> None:
        data = self._read(pipes.events)
        if data is None:
            return
        if not data:
            self._close_fd(pipes, pipes.events)
            return
        if pipes is self.current:
            self._frames(pipes.reader, data)

    def _on_output(self, pipes: Pipes, fd: int) -> bool:
        """Read once; True if bytes came. Output of a retired run is dropped."""
        data = self._read(fd)
        if data is None:
            return False
        if not data:
            self._close_fd(pipes, fd)
            return False
        name = "stderr" if fd == pipes.stderr else "stdout"
        if fd == self.base.stderr:
            self.stderr_tail = (self.stderr_tail + data)[-4096:]
        if pipes is self.current or (pipes is self.base and self.fd_sock is None):
            self.on_output(self, name, data)
        return True

    def _close_fd(self, pipes: Pipes, fd: int) -> None:
        try:
            self.loop.remove_reader(fd)
            os.close(fd)
        except OSError:
            pass
        if fd == pipes.stdout:
            pipes.stdout = -1
        elif fd == pipes.stderr:
            pipes.stderr = -1
        elif fd == pipes.events:
            pipes.events = -1
        if pipes in self.stale and not pipes.fds():
            self.stale.remove(pipes)

    def _close(self, pipes: Pipes) -> None:
        for fd in pipes.fds():
            self._close_fd(pipes, fd)

    # ----- ending ----------------------------------------------------------------------
    def signal(self, sig: int) -> None:
        try:
            os.kill(self.pid, sig)
        except OSError:
            pass

    def kill(self) -> None:
        """SIGKILL the worker and its process group (its reaped exit is seen later)."""
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except OSError:
            pass
        self.signal(signal.SIGKILL)

    def close(self) -> None:
        """After the process is reaped: release every fd."""
        self.exited = True
        for fd in (self.ctrl_w,):
            self.loop.remove_writer(fd)
        if self.spare is not None:
            for fd in self.spare[1]:
                os.close(fd)
            self.stale.append(self.spare[0])
            self.spare = None
        for pipes in [self.base, *self.stale] + ([self.current] if self.current else []):
            self._close(pipes)
        self.stale.clear()
        self.current = None
        for fd in (self.ctrl_w, self.reply_r):
            try:
                self.loop.remove_reader(fd)
                os.close(fd)
            except OSError:
                pass
        if self.fd_sock is not None:
            self.fd_sock.close()
        self.stat.close()
