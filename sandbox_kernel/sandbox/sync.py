"""The synchronous facade over the async session core, for the library and the CLI.

Each facade call runs the core's coroutine on the loop the session lives on (a manager's
background loop thread, or the kernel's loop) and waits for it. Nothing is implemented
twice: every method is a line that forwards.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from ..agent.frames import Frame
from ..agent.protocol import CHUNK_BYTES
from .files import read_ahead
from .runs import CellRun
from .session import AsyncSession
from .spec import CellResult, ExecResult, FileInfo, Health, Limits

T = TypeVar("T")


class LoopThread:
    """An event loop in a daemon thread, for sessions used from synchronous code."""

    def __init__(self, name: str = "sandbox-loop") -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self.loop.is_running():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout=5)
        if not self._thread.is_alive() and not self.loop.is_closed():
            self.loop.close()


def call(loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, T],
         timeout: float | None = None) -> T:
    """Run a coroutine on `loop` from another thread and wait for its result."""
    if _running_loop() is loop:
        coro.close()
        raise RuntimeError("a synchronous sandbox call from its own event loop would deadlock;"
                           " await the AsyncSession instead")
    return asyncio.run_coroutine_threadsafe(coro, loop).result(timeout)


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


class Run:
    """A cell in flight (facade): events go to the callback given to `Session.run`."""

    def __init__(self, session: Session, future: Any,
                 started: concurrent.futures.Future[CellRun]) -> None:
        self.session = session
        self._future = future
        self._started = started

    def _run(self) -> CellRun:
        return self._started.result()

    @property
    def id(self) -> int:
        return self._run().id

    def send_input(self, value: str) -> None:
        """Answer an input request (also from the `on_event` callback itself)."""
        self.session._call_or_queue(self._run().send_input(value))

    def interrupt(self, grace: float = 3.0) -> bool:
        """Interrupt the cell; from `on_event` it is queued and True means "sent"."""
        return self.session._call_or_queue(self._run().interrupt(grace)) is not False

    def wait(self, timeout: float | None = None) -> CellResult:
        result: CellResult = self._future.result(timeout)
        return result


class Session:
    """A connected sandbox for synchronous callers; wraps one AsyncSession."""

    def __init__(self, core: AsyncSession, loop: asyncio.AbstractEventLoop) -> None:
        self.core = core
        self.loop = loop
        self._queued: set[asyncio.Task[Any]] = set()

    def _call(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        return call(self.loop, coro, timeout)

    def _call_or_queue(self, coro: Coroutine[Any, Any, T]) -> T | None:
        """Wait for the result, or, on the session's own loop (in a callback), queue it."""
        if _running_loop() is self.loop:
            task = self.loop.create_task(coro)
            self._queued.add(task)
            task.add_done_callback(self._queued.discard)
            return None
        return self._call(coro)

    def __getattr__(self, name: str) -> Any:
        # Other plain attributes of the core (backend, ceilings, created_at, ...).
        return getattr(self.core, name)

    @property
    def session_id(self) -> str:
        return self.core.session_id

    @property
    def container_id(self) -> str:
        return self.core.container_id

    @property
    def limits(self) -> Limits:
        return self.core.limits

    @property
    def agent(self) -> dict[str, Any]:
        return self.core.agent

    @property
    def alive(self) -> bool:
        return self.core.alive

    @property
    def busy(self) -> bool:
        return self.core.busy

    def close(self) -> None:
        if self.loop.is_running():
            self._call(self.core.close())
        else:
            self.core.close_now()

    def diagnose(self, stalled: bool = False) -> str:
        return self._call(self.core.diagnose(stalled))

    def run(self, code: str, on_event: Callable[[Frame], None], **kwargs: Any) -> Run:
        """Start a cell; `on_event` gets its output frames (on the loop's thread, so it must
        not block; the Run's send_input and interrupt may be called from it)."""
        started: concurrent.futures.Future[CellRun] = concurrent.futures.Future()

        async def drive() -> CellResult:
            try:
                run = await self.core.run(code, **kwargs)
            except BaseException as exc:
                started.set_exception(exc)
                raise
            started.set_result(run)
            async for frame in run.events():
                try:
                    on_event(frame)
                except Exception:  # noqa: BLE001 - a consumer bug must not end the cell
                    pass
            assert run.result is not None
            return run.result

        return Run(self, asyncio.run_coroutine_threadsafe(drive(), self.loop), started)

    def interrupt(self, target: int | None = None, grace: float = 3.0) -> bool:
        return self._call(self.core.interrupt(target, grace))

    def execute_command(self, command: str | list[str], timeout: float | None = None, *,
                        on_output: Callable[[str, str], None] | None = None,
                        env: dict[str, str] | None = None) -> ExecResult:
        return self._call(self.core.execute_command(command, timeout, on_output=on_output,
                                                    env=env))

    def complete(self, code: str, cursor_pos: int, lang: str = "python") -> dict[str, Any]:
        return self._call(self.core.complete(code, cursor_pos, lang))

    def inspect(self, code: str, cursor_pos: int, detail_level: int = 0,
                lang: str = "python") -> dict[str, Any]:
        return self._call(self.core.inspect(code, cursor_pos, detail_level, lang))

    def is_complete(self, code: str, lang: str = "python") -> dict[str, Any]:
        return self._call(self.core.is_complete(code, lang))

    def get_var(self, lang: str, name: str) -> str:
        return self._call(self.core.get_var(lang, name))

    def set_var(self, lang: str, name: str, json_text: str) -> None:
        self._call(self.core.set_var(lang, name, json_text))

    def restart_interpreter(self, lang: str = "python") -> None:
        self._call(self.core.restart_interpreter(lang))

    def set_env(self, env: dict[str, str | None]) -> None:
        self._call(self.core.set_env(env))

    def read_file(self, path: str, max_bytes: int = 256 * 2**20,
                  on_progress: Callable[[int], None] | None = None) -> bytes:
        return self._call(self.core.files.read(path, max_bytes, on_progress))

    def read_file_to(self, path: str, dest: Any, max_bytes: int = 256 * 2**20) -> int:
        """Stream a file into a binary file object (or a callable taking chunks)."""
        sink = dest if callable(dest) else dest.write
        return self._call(self.core.files.read_to(path, sink, max_bytes))

    def write_file(self, path: str, data: bytes | str, *, parents: bool = False,
                   on_progress: Callable[[int], None] | None = None) -> int:
        return self._call(self.core.files.write(path, data, parents=parents,
                                                on_progress=on_progress))

    def write_file_from(self, path: str, src: Any, size: int, *, parents: bool = False) -> int:
        """Stream `size` bytes from a binary file object into a file in the sandbox."""
        return self._call(self.core.files.write_from(
            path, read_ahead(lambda: src.read(CHUNK_BYTES)), size, parents=parents))

    def list_dir(self, path: str = "/sandbox") -> tuple[list[FileInfo], bool]:
        return self._call(self.core.files.list_dir(path))

    def list_files(self, path: str = "/sandbox") -> list[FileInfo]:
        return self.list_dir(path)[0]

    def stat(self, path: str) -> FileInfo:
        return self._call(self.core.files.stat(path))

    def delete_file(self, path: str, recursive: bool = False) -> None:
        self._call(self.core.files.delete(path, recursive))

    def mkdir(self, path: str, parents: bool = False) -> None:
        self._call(self.core.files.mkdir(path, parents))

    def stats(self, activity: bool = True) -> dict[str, Any]:
        return self._call(self.core.stats(activity))

    def health(self, threshold: float = 95.0, activity: bool = True) -> Health:
        return self._call(self.core.health(threshold, activity))

    def update_limits(self, **changes: object) -> Limits:
        return self._call(self.core.update_limits(**changes))

    def __repr__(self) -> str:
        return f"<Session {self.core.session_id} container={self.core.container_id[:12]}>"
