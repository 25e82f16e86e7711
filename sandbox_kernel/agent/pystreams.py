"""sys.stdout and sys.stderr of the Python worker as cell output: text batched into stream
frames on the cell's pipe (pylink.py), flushed by size, by a short delay, and at the end."""

from __future__ import annotations

import codecs
import io
import threading
import time
from typing import Any

from .frames import Frame
from .pylink import Link

_FLUSH_DELAY = 0.02
FRAME_CHARS = 256 * 1024
_FLUSH_SIZE = 64 * 1024
#: What IPython's history pays for a string besides its characters (object and list slot).
_KEPT_OVERHEAD = 56


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
