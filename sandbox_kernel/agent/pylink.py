"""The Python worker's pipes to the agent: requests in, replies and cell events out.

Requests arrive on one pipe (and each cell's pipes on a socket, with SCM_RIGHTS); replies
go up another. During a cell, its events go up the cell's own pipe, which the worker
keeps until the next cell starts, so late writes land where the agent drops them.
"""

from __future__ import annotations

import array
import os
import socket
import threading

from .frames import Frame, decode, encode, encode_stream
from .protocol import WORKER_REQUESTS


class Link:
    """Frames to and from the agent; SIGINT never splits a frame being written."""

    def __init__(self, ctrl_fd: int, reply_fd: int, sock_fd: int) -> None:
        self.reader = open(ctrl_fd, "rb", buffering=65536, closefd=True)  # noqa: SIM115 - lives as long as the process
        self.reply_fd = reply_fd
        self.sock = socket.socket(fileno=sock_fd)
        self.events_fd = -1
        self.idle = True  # between cells, frames go up the reply pipe (comms, see pycomm)
        self.later: list[Frame] = []
        self.lock = threading.Lock()
        self.in_user_code = False
        self._writing = 0
        self._pending_interrupt = False
        for fd in (ctrl_fd, reply_fd, sock_fd):
            os.set_inheritable(fd, False)
        self.reserve: list[int] = []
        self.refill()

    def refill(self) -> None:
        """Keep three descriptors spare, so a cell that used up the rest still gets pipes."""
        try:
            while len(self.reserve) < 3:
                self.reserve.append(os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC))
        except OSError:
            pass

    def _write(self, fd: int, data: bytes) -> None:
        with self.lock:
            self._writing += 1
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
            finally:
                self._writing -= 1
        if self._pending_interrupt and threading.current_thread() is threading.main_thread():
            self._pending_interrupt = False
            if self.in_user_code:
                raise KeyboardInterrupt

    def event(self, frame: Frame) -> None:
        """A frame of the current cell, on the cell's own pipe (between cells, on the reply
        pipe: the agent keeps only comm frames and those of a comm request it sent)."""
        self._event(encode(frame))

    def stream(self, frame: Frame) -> None:
        """Stream text as an ``out`` frame (no JSON around the text), routed as `event`."""
        self._event(encode_stream(frame))

    def _event(self, data: bytes) -> None:
        fd = self.reply_fd if self.idle else self.events_fd
        if fd >= 0:
            self._write(fd, data)

    def reply(self, frame: Frame) -> None:
        self._write(self.reply_fd, encode(frame))

    def recv(self) -> Frame | None:
        """The next request: one put aside while a cell waited for input, or the pipe's."""
        if self.later:
            return self.later.pop(0)
        line = self.reader.readline()
        if not line:
            return None
        return decode(line, WORKER_REQUESTS)

    def recv_input(self) -> Frame | None:
        """An input_reply for the running cell; other requests wait for the request loop
        (the sync that follows every run among them)."""
        while True:
            line = self.reader.readline()
            if not line:
                return None
            frame = decode(line, WORKER_REQUESTS)
            if frame["type"] == "input_reply":
                return frame
            self.later.append(frame)

    def take_pipes(self) -> tuple[int, int, int]:
        """The new cell's pipes: events, stdout, stderr (sent just before its run frame)."""
        fds = array.array("i")
        while self.reserve:
            os.close(self.reserve.pop())
        _, anc, _, _ = self.sock.recvmsg(1, socket.CMSG_SPACE(3 * fds.itemsize),
                                         socket.MSG_CMSG_CLOEXEC)
        for level, kind, data in anc:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds.frombytes(data[: len(data) - len(data) % fds.itemsize])
        if len(fds) != 3:
            for fd in fds:
                os.close(fd)
            raise OSError("the agent did not pass the cell's pipes")
        return fds[0], fds[1], fds[2]

    def switch(self, events_fd: int) -> None:
        """Later frames go to a new cell's pipe; the previous one is closed."""
        with self.lock:
            old, self.events_fd = self.events_fd, events_fd
            self.idle = False
        if old >= 0:
            os.close(old)

    def settle(self) -> None:
        """The cell is over: what comes later goes up the reply pipe."""
        with self.lock:
            self.idle = True

    def close_in_child(self) -> None:
        """After fork: a child never talks to the agent on the worker's behalf."""
        self.lock = threading.Lock()
        for fd in (self.reader.fileno(), self.reply_fd, self.sock.fileno(), *self.reserve):
            try:
                os.close(fd)
            except OSError:
                pass

    def on_sigint(self, signum: int, frame: object) -> None:
        if not self.in_user_code:
            return
        if self._writing:
            self._pending_interrupt = True
            return
        raise KeyboardInterrupt
