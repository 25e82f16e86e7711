"""The Python worker's side of its pipes, and sys.stdout/sys.stderr as cell output.

Requests arrive on one pipe (and each cell's pipes on a socket, with SCM_RIGHTS); replies
go up another. During a cell, its events go up the cell's own pipe, which the worker
keeps until the next cell starts, so late writes land where the agent drops them.
"""

from __future__ import annotations

import array
import codecs
import io
import os
import socket
import threading
import time
from typing import Any

from .frames import Frame, decode, encode, encode_stream
from .protocol import WORKER_REQUESTS

_FLUSH_DELAY = 0.02
FRAME_CHARS = 256 * 1024
_FLUSH_SIZE = 64 * 1024
#: What IPython's history pays for a string besides its characters (object and list slot).
_KEPT_OVERHEAD = 56


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


class BinaryOut(io.RawIOBase):
    """`sys.stdout.buffer`: bytes decoded incrementally as UTF-8 (a split character waits)."""

    def __init__(self, text: OutStream) -> None:
        self.text = text
        self.decoder = codecs.getincrementaldecoder("utf-8")("replace")

    def writable(self) -> bool:
        return True

    def fileno(self) -> int:
        return self.text.fileno()

    def write(self, b: Any) -> int:
        data = bytes(b)
        decoded = self.decoder.decode(data)
        if decoded:
            self.text.write(decoded)
        return len(data)

    def flush(self) -> None:
        self.text.flush()


class Output:
    """stdout and stderr of the worker, batched into stream frames on a flusher thread."""

    def __init__(self, link: Link) -> None:
        self.link = link
        self.lock = threading.Lock()
        self.run_id = 0
        #: Bytes the current cell's writes cost IPython's history, and its budget (the cap).
        self.history_cost = 0
        self.history_budget = 0
        self.stdout = OutStream(self, "stdout")
        self.stderr = OutStream(self, "stderr")
        self.flusher = Flusher(self)

    def begin(self, run_id: int, history_budget: int) -> None:
        self.run_id = run_id
        self.history_cost, self.history_budget = 0, history_budget

    def flush(self) -> None:
        self.stdout.flush()
        self.stderr.flush()

    def emit(self, frame: Frame) -> None:
        """A rich event after the text written before it, preserving order."""
        self.flush()
        self.link.event({**frame, "id": self.run_id})

    def after_fork(self) -> None:
        """Locks a thread held at the fork would never be released in the child: the
        flusher does not exist there, so its event is replaced too."""
        self.lock = threading.Lock()
        self.flusher.event = threading.Event()


class HistoryTee:
    """`OutStream.write` as IPython sets and reads it. IPython 9 replaces sys.stdout's write
    for each cell with a wrapper that keeps every string in its history; that wrapper is
    used until the strings cost about the cell's output cap in memory, then writes go
    straight to `put`: a cell that prints for hours does not keep it all until the memory
    limit ends the interpreter (docs/architecture.md, "Shell fidelity")."""

    def __get__(self, obj: OutStream | None, cls: type[OutStream]) -> Any:
        if obj is None:
            return cls.put
        if obj.tee is not None and obj.out.history_cost < obj.out.history_budget:
            return obj.tee
        return obj.put

    def __set__(self, obj: OutStream, value: Any) -> None:
        obj.tee = None if value == obj.put else value


class OutStream(io.TextIOBase):
    """sys.stdout / sys.stderr: writes become `stream` frames of the current cell."""

    write = HistoryTee()

    def __init__(self, out: Output, name: str) -> None:
        self.out = out
        self.name_ = name
        self.tee: Any = None
        self.buf: list[str] = []
        self.size = 0
        self._buffer = BinaryOut(self)

    @property
    def buffer(self) -> BinaryOut:
        return self._buffer

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return "utf-8"

    @property
    def name(self) -> str:
        return self.name_

    def isatty(self) -> bool:
        return False

    def writable(self) -> bool:
        return True

    def fileno(self) -> int:
        return 1 if self.name_ == "stdout" else 2

    def put(self, s: str) -> int:
        if not isinstance(s, str):
            raise TypeError(f"write() argument must be str, not {type(s).__name__}")
        other = self.out.stderr if self is self.out.stdout else self.out.stdout
        if other.buf:  # keep stdout/stderr interleaving: the other stream's text goes first
            other.flush()
        with self.out.lock:
            self.buf.append(s)
            self.size += len(s)
            self.out.history_cost += len(s) + _KEPT_OVERHEAD
            big = self.size >= _FLUSH_SIZE
        if big:
            self.flush()
        else:
            self.out.flusher.kick()
        return len(s)

    def flush(self) -> None:
        with self.out.lock:
            if not self.buf:
                return
            text = "".join(self.buf)
            self.buf = []
            self.size = 0
        # Big output goes in pieces, so the host publishes one while the next is in transit.
        for start in range(0, len(text), FRAME_CHARS):
            self.out.link.stream({"id": self.out.run_id, "type": "stream", "name": self.name_,
                                  "text": text[start : start + FRAME_CHARS]})


class Flusher(threading.Thread):
    """Flushes buffered output shortly after it is written, so output streams live."""

    def __init__(self, out: Output) -> None:
        super().__init__(name="sandbox-flusher", daemon=True)
        self.out = out
        self.event = threading.Event()

    def kick(self) -> None:
        if not self.event.is_set():
            self.event.set()

    def run(self) -> None:
        while True:
            self.event.wait()
            time.sleep(_FLUSH_DELAY)
            self.event.clear()
            try:
                self.out.flush()
            except Exception:  # noqa: BLE001 - one bad write must not stop live output
                continue
