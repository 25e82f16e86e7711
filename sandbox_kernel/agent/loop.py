"""The agent's event loop: readers, writers, timers, signals and a few small coroutines.

It is the part of asyncio the agent uses, with asyncio's order of calls (ready callbacks
first-in first-out, then what became ready in one poll). asyncio itself was the largest
import of the agent: about 2 MB of every sandbox's memory, measured in a running container,
and part of the time before the agent can start the first worker. See docs/architecture.md,
"The agent's loop".
"""

from __future__ import annotations

import heapq
import selectors
import signal
import socket
import time
from collections import deque
from collections.abc import Callable, Coroutine, Generator
from typing import Any

_EVENTS = (selectors.EVENT_READ, selectors.EVENT_WRITE)
_PURGE_AT = 100  # cancelled timers in the heap before it is rebuilt without them


class Timer:
    """A call the loop makes once (at `when`, or as soon as it can); cancel() stops it."""

    __slots__ = ("_loop", "args", "callback", "cancelled", "when")

    def __init__(self, when: float, callback: Callable[..., object], args: tuple[Any, ...],
                 loop: Loop | None = None) -> None:
        self.when, self.callback, self.args = when, callback, args
        self.cancelled = False
        self._loop = loop  # set for a timer in the loop's heap

    def cancel(self) -> None:
        if not self.cancelled:
            self.cancelled = True
            if self._loop is not None:
                self._loop.cancelled_timers += 1

    def __lt__(self, other: Timer) -> bool:
        return self.when < other.when


class Wait:
    """What a task awaits: `arm(loop, resume)` arranges for `resume` to be called once."""

    __slots__ = ("arm",)

    def __init__(self, arm: Callable[[Loop, Callable[[], None]], object]) -> None:
        self.arm = arm

    def __await__(self) -> Generator[Wait, None, None]:
        yield self


def sleep(delay: float) -> Wait:
    """`await sleep(s)` in a task resumes it after `s` seconds."""
    return Wait(lambda loop, resume: loop.call_later(delay, resume))


class Event:
    """asyncio.Event's set/clear/wait: every task waiting is resumed when it is set."""

    def __init__(self) -> None:
        self._set = False
        self._waiters: list[Callable[[], object]] = []

    def is_set(self) -> bool:
        return self._set

    def set(self) -> None:
        self._set = True
        waiters, self._waiters = self._waiters, []
        for resume in waiters:
            resume()

    def clear(self) -> None:
        self._set = False

    async def wait(self) -> None:
        if not self._set:
            await Wait(lambda loop, resume: self._waiters.append(
                lambda: loop.call_soon(resume)))


class Task:
    """A coroutine the loop drives; its first step runs at the loop's next turn.

    What it awaits holds it (a timer, an event's waiter list), so unlike an asyncio task
    its creator need not keep a reference for it to finish."""

    def __init__(self, loop: Loop, coro: Coroutine[Any, Any, None]) -> None:
        self._loop, self._coro = loop, coro
        self._done = False
        self._callbacks: list[Callable[[Task], object]] = []
        loop.call_soon(self._step)

    def done(self) -> bool:
        return self._done

    def add_done_callback(self, callback: Callable[[Task], object]) -> None:
        if self._done:
            self._loop.call_soon(callback, self)
        else:
            self._callbacks.append(callback)

    def _step(self) -> None:
        try:
            waiting = self._coro.send(None)
        except StopIteration:
            self._finish()
        except Exception:  # noqa: BLE001 - reported, as asyncio does, and the loop goes on
            self._loop.report(f"task {getattr(self._coro, '__qualname__', self._coro)} failed")
            self._finish()
        else:
            waiting.arm(self._loop, self._step)

    def _finish(self) -> None:
        self._done = True
        for callback in self._callbacks:
            self._loop.call_soon(callback, self)
        self._callbacks.clear()


class Loop:
    """One thread's loop over a selector; `run(main)` returns when `main` has returned."""

    def __init__(self, log: Callable[[str], None]) -> None:
        self.log = log
        self._selector = selectors.DefaultSelector()
        self._ready: deque[Timer] = deque()
        self._timers: list[Timer] = []
        self.cancelled_timers = 0
        self._signals: dict[int, Timer] = {}
        self._wakeup: tuple[socket.socket, socket.socket] | None = None
        self._stopping = False

    # ----- scheduling -------------------------------------------------------------------
    def call_soon(self, callback: Callable[..., object], *args: Any) -> Timer:
        timer = Timer(0.0, callback, args)
        self._ready.append(timer)
        return timer

    def call_later(self, delay: float, callback: Callable[..., object], *args: Any) -> Timer:
        timer = Timer(time.monotonic() + delay, callback, args, self)
        heapq.heappush(self._timers, timer)
        return timer

    def create_task(self, coro: Coroutine[Any, Any, None]) -> Task:
        return Task(self, coro)

    # ----- file descriptors -------------------------------------------------------------
    def add_reader(self, fd: int, callback: Callable[..., object], *args: Any) -> None:
        self._watch(fd, 0, Timer(0.0, callback, args))

    def add_writer(self, fd: int, callback: Callable[..., object], *args: Any) -> None:
        self._watch(fd, 1, Timer(0.0, callback, args))

    def remove_reader(self, fd: int) -> bool:
        return self._unwatch(fd, 0)

    def remove_writer(self, fd: int) -> bool:
        return self._unwatch(fd, 1)

    def _watch(self, fd: int, which: int, handle: Timer) -> None:
        try:
            key = self._selector.get_key(fd)
        except KeyError:
            handles: list[Timer | None] = [None, None]
            handles[which] = handle
            self._selector.register(fd, _EVENTS[which], handles)
            return
        old = key.data[which]
        if old is not None:
            old.cancel()
        key.data[which] = handle
        self._selector.modify(fd, key.events | _EVENTS[which], key.data)

    def _unwatch(self, fd: int, which: int) -> bool:
        try:
            key = self._selector.get_key(fd)
        except KeyError:
            return False
        handles = key.data
        old = handles[which]
        handles[which] = None
        if old is not None:
            old.cancel()  # already polled this turn: it must not run now
        events = key.events & ~_EVENTS[which]
        if events:
            self._selector.modify(fd, events, handles)
        else:
            self._selector.unregister(fd)
        return old is not None

    # ----- signals ----------------------------------------------------------------------
    def add_signal_handler(self, sig: int, callback: Callable[..., object], *args: Any) -> None:
        """`callback` runs in the loop after `sig` arrives (the C handler only wakes it)."""
        if self._wakeup is None:
            self._wakeup = socket.socketpair()
            for end in self._wakeup:
                end.setblocking(False)
            signal.set_wakeup_fd(self._wakeup[1].fileno(), warn_on_full_buffer=False)
            self.add_reader(self._wakeup[0].fileno(), self._on_signals)
        self._signals[sig] = Timer(0.0, callback, args)
        signal.signal(sig, _no_op)
        signal.siginterrupt(sig, False)

    def _on_signals(self) -> None:
        assert self._wakeup is not None
        try:
            got = self._wakeup[0].recv(4096)
        except BlockingIOError:
            return
        for sig in dict.fromkeys(got):  # a signal that came twice is handled once
            handler = self._signals.get(sig)
            if handler is not None:
                self.call_soon(handler.callback, *handler.args)

    # ----- running ----------------------------------------------------------------------
    def run(self, main: Coroutine[Any, Any, None]) -> None:
        self.create_task(main).add_done_callback(lambda _task: self.stop())
        try:
            while not self._stopping:
                self._turn()
        finally:
            self._close()

    def stop(self) -> None:
        self._stopping = True

    def report(self, what: str) -> None:
        """An exception escaped a callback: one entry in the agent's log, and go on."""
        import traceback  # only on this path: it is not small

        self.log(f"{what}: {traceback.format_exc()}")

    def _turn(self) -> None:
        timeout: float | None = None
        if self._ready:
            timeout = 0.0
        elif self._timers:
            timeout = max(0.0, self._timers[0].when - time.monotonic())
        for key, mask in self._selector.select(timeout):
            reader, writer = key.data
            if mask & selectors.EVENT_READ and reader is not None:
                self._ready.append(reader)
            if mask & selectors.EVENT_WRITE and writer is not None:
                self._ready.append(writer)
        self._due(time.monotonic())
        for _ in range(len(self._ready)):  # what these schedule runs at the next turn
            handle = self._ready.popleft()
            if not handle.cancelled:
                try:
                    handle.callback(*handle.args)
                except Exception:  # noqa: BLE001 - as in a task
                    self.report(f"callback {handle.callback!r} failed")

    def _due(self, now: float) -> None:
        """Move the timers that are due to the ready queue, dropping cancelled ones."""
        if self.cancelled_timers > _PURGE_AT and self.cancelled_timers * 2 > len(self._timers):
            self._timers = [t for t in self._timers if not t.cancelled]
            heapq.heapify(self._timers)
            self.cancelled_timers = 0
        while self._timers and self._timers[0].when <= now:
            timer = heapq.heappop(self._timers)
            if timer.cancelled:
                self.cancelled_timers -= 1
            else:
                timer._loop = None
                self._ready.append(timer)

    def _close(self) -> None:
        if self._wakeup is not None:
            signal.set_wakeup_fd(-1)
            for end in self._wakeup:
                end.close()
        self._selector.close()


def _no_op(_sig: int, _frame: object) -> None:
    """The Python-level handler: the signal's number reaches the loop by its wakeup fd."""
