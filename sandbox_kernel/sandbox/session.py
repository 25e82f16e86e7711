"""One sandbox: a running container and the channel to its agent.

Everything a caller does to a sandbox goes through here: run code, run commands, move
files, read health, change limits, interrupt, close. Frames from the agent are untrusted
and are type-checked before they become results.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any, cast

from ..agent import protocol
from ..errors import (
    FileOperationError,
    LimitError,
    ProtocolError,
    SandboxError,
    SandboxTimeout,
    SessionGone,
    UsageError,
)
from .backend import Backend
from .channel import Call, Channel, Frame
from .spec import RULES, CellResult, ExecResult, FileInfo, Health, Limits, Verdict, format_size

#: Extra host-side patience beyond a cell's own timeout before the container is suspected.
_MARGIN = 15.0
_VERDICTS: frozenset[Any] = frozenset(
    {"ok", "error", "timeout", "cpu_time", "oom", "interrupted", "crashed"})


def _int(v: Any, default: int = 0) -> int:
    return v if isinstance(v, int) and not isinstance(v, bool) else default


def _float(v: Any) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def _str(v: Any, limit: int = 100_000) -> str:
    return v[:limit] if isinstance(v, str) else ""


class Run:
    """A cell in flight. Events go to the callback given to `Session.run`."""

    def __init__(self, session: Session, call: Call, hard_timeout: float | None) -> None:
        self.session = session
        self.call = call
        self.hard_timeout = hard_timeout

    @property
    def id(self) -> int:
        return self.call.id

    def send_input(self, value: str) -> None:
        self.session.channel.send({"id": self.call.id, "type": "input_reply", "value": value})

    def interrupt(self, grace: float = 3.0) -> bool:
        return self.session.interrupt(self.call.id, grace)

    def wait(self) -> CellResult:
        """Block until the cell ends; translate a dead container into SessionGone."""
        try:
            frame = self.call.wait(self.hard_timeout)
        except SandboxTimeout:
            self.session.channel.forget(self.call)
            raise SessionGone(self.session.diagnose(stalled=True)) from None
        except SessionGone:
            raise SessionGone(self.session.diagnose()) from None
        finally:
            self.session.touch(busy=-1)
        return self.session.cell_result(frame)


class Session:
    """A connected sandbox. Create it through SandboxManager (or `Session.connect`)."""

    def __init__(self, backend: Backend, container_id: str, session_id: str, image: str,
                 limits: Limits, channel: Channel, ceilings: Limits | None = None) -> None:
        self.backend = backend
        self.container_id = container_id
        self.session_id = session_id
        self.image = image
        self.limits = limits
        self.ceilings = ceilings
        self.channel = channel
        self.created_at = time.time()
        self.last_activity_at = self.created_at
        self.agent: Frame = {}
        self._busy = 0
        self._lock = threading.Lock()
        self._prev_stats: Frame | None = None
        self._closed = False

    # ----- lifecycle ----------------------------------------------------------------------
    @classmethod
    def connect(cls, backend: Backend, container_id: str, session_id: str, image: str,
                limits: Limits, *, start: bool, ceilings: Limits | None = None,
                timeout: float = 30.0) -> Session:
        """Attach to a container (starting it if asked) and greet its agent."""
        stream = backend.attach(container_id)
        channel = Channel(stream, name=f"sandbox-{session_id}")
        session = cls(backend, container_id, session_id, image, limits, channel, ceilings)
        try:
            channel.start()
            if start:
                backend.start(container_id)
            hello = channel.request("hello", timeout=timeout)
            if hello.get("version") != protocol.PROTOCOL_VERSION:
                raise ProtocolError(
                    f"the sandbox agent speaks protocol {hello.get('version')!r}, not "
                    f"{protocol.PROTOCOL_VERSION}; rebuild the image with "
                    "'sandbox-kernel build-image'")
            session.agent = hello
        except SandboxTimeout:
            session.close()
            raise SessionGone("the sandbox agent did not start; see 'sandbox-kernel doctor'") \
                from None
        except BaseException:
            session.close()
            raise
        return session

    @property
    def alive(self) -> bool:
        return not self.channel.closed

    @property
    def busy(self) -> bool:
        return self._busy > 0

    def touch(self, busy: int = 0) -> None:
        with self._lock:
            self._busy = max(0, self._busy + busy)
            self.last_activity_at = time.time()

    def close(self) -> None:
        """Disconnect (the agent exits on EOF) and remove the container. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self.channel.close("the sandbox was closed")
        self.backend.remove(self.container_id)

    def diagnose(self, stalled: bool = False) -> str:
        """One sentence on why the sandbox stopped answering, from the engine's view."""
        try:
            st = self.backend.state(self.container_id)
        except SandboxError as exc:
            return str(exc)
        if not st.exists:
            return "the sandbox container was removed from outside; its state is lost"
        if st.status == "paused":
            return "the sandbox container was paused from outside"
        if st.oom_killed:
            return (f"the sandbox ran out of memory ({format_size(self.limits.memory)}) and "
                    "its container stopped; state is lost")
        if st.status != "running":
            return (f"the sandbox container stopped ({st.status}, exit code {st.exit_code}); "
                    "its state is lost")
        if stalled:
            return "the sandbox agent stopped answering"
        return self.channel.close_reason()

    def _request(self, ftype: str, timeout: float = 30.0, activity: bool = True,
                 **fields: Any) -> Frame:
        if activity:
            self.touch()
        try:
            return self.channel.request(ftype, timeout=timeout, **fields)
        except SessionGone:
            raise SessionGone(self.diagnose()) from None
        except SandboxTimeout:
            raise SessionGone(self.diagnose(stalled=True)) from None

    @staticmethod
    def _content(frame: Frame) -> dict[str, Any]:
        content = frame.get("content")
        if frame.get("type") != "reply" or not isinstance(content, dict):
            raise ProtocolError("the sandbox agent sent a malformed reply")
        return content

    # ----- code ---------------------------------------------------------------------------
    def run(self, code: str, on_event: Callable[[Frame], None], *, lang: str = "python",
            execution_count: int | None = None, allow_stdin: bool = False, silent: bool = False,
            store_history: bool = True, user_expressions: dict[str, str] | None = None) -> Run:
        """Start a cell; `on_event` gets stream/display/result/error/input_request frames."""
        lim = self.limits
        self.touch(busy=+1)
        try:
            call = self.channel.call(
                "run", on_frame=on_event, code=code, lang=lang, timeout=lim.timeout,
                cpu_time=lim.cpu_time, output_cap=lim.output, execution_count=execution_count,
                allow_stdin=allow_stdin, silent=silent, store_history=store_history,
                user_expressions=user_expressions or {})
        except BaseException:
            self.touch(busy=-1)
            raise
        return Run(self, call, lim.timeout + 3.0 + _MARGIN)

    def cell_result(self, frame: Frame) -> CellResult:
        raw = frame.get("verdict")
        fallback: Verdict = "error" if frame.get("status") != "ok" else "ok"
        verdict = cast(Verdict, raw) if isinstance(raw, str) and raw in _VERDICTS else fallback
        return CellResult(
            verdict=verdict,
            duration_ms=_float(frame.get("duration_ms")) or 0.0,
            cpu_seconds=_float(frame.get("cpu_seconds")),
            peak_memory=_int(frame.get("peak_memory")),
            state_lost=frame.get("state_lost") is True,
            message=_str(frame.get("message"), 500),
            dropped_chars=_int(frame.get("dropped_chars")),
            exit_signal=_str(frame.get("exit_signal"), 20) or None,
        )

    def interrupt(self, target: int | None = None, grace: float = 3.0) -> bool:
        """SIGINT the running cell or command; the agent kills it if still running after grace."""
        reply = self._content(self._request("interrupt", target=target, grace=grace, timeout=10))
        return reply.get("delivered") is True

    def execute_command(self, command: str | list[str], timeout: float | None = None, *,
                        on_output: Callable[[str, str], None] | None = None,
                        env: dict[str, str] | None = None) -> ExecResult:
        """Run a shell command (a string for /bin/sh -c, or an argv list) to completion."""
        limit = self.limits.timeout if timeout is None else RULES["timeout"].parse(
            timeout, "timeout", self.ceilings.timeout if self.ceilings else None)

        def forward(frame: Frame) -> None:
            if on_output is not None and frame.get("type") == "stream":
                on_output(_str(frame.get("name"), 10), _str(frame.get("text"), 1 << 24))

        fields: dict[str, Any] = {"timeout": limit, "output_cap": self.limits.output,
                                  "stream": on_output is not None, "env": env or {}}
        fields["argv" if isinstance(command, list) else "command"] = command
        self.touch(busy=+1)
        try:
            call = self.channel.call("exec", on_frame=forward if on_output else None, **fields)
            frame = call.wait(limit + _MARGIN)
        except SandboxTimeout:
            raise SessionGone(self.diagnose(stalled=True)) from None
        except SessionGone:
            raise SessionGone(self.diagnose()) from None
        finally:
            self.touch(busy=-1)
        return ExecResult(
            exit_code=_int(frame.get("exit_code"), -1),
            stdout=_str(frame.get("stdout"), 1 << 30),
            stderr=_str(frame.get("stderr"), 1 << 30),
            duration_ms=_float(frame.get("duration_ms")) or 0.0,
            timed_out=frame.get("timed_out") is True,
            oom_killed=frame.get("oom_killed") is True,
            interrupted=frame.get("interrupted") is True,
            truncated_bytes=_int(frame.get("dropped_bytes")),
        )

    def complete(self, code: str, cursor_pos: int, lang: str = "python") -> dict[str, Any]:
        return self._content(self._request("complete", code=code, cursor_pos=cursor_pos,
                                           lang=lang, timeout=15))

    def inspect(self, code: str, cursor_pos: int, detail_level: int = 0,
                lang: str = "python") -> dict[str, Any]:
        return self._content(self._request("inspect", code=code, cursor_pos=cursor_pos,
                                           detail_level=detail_level, lang=lang, timeout=15))

    def is_complete(self, code: str, lang: str = "python") -> dict[str, Any]:
        return self._content(self._request("is_complete", code=code, lang=lang, timeout=15))

    def get_var(self, lang: str, name: str) -> str:
        """A variable of an interpreter (python or node), as JSON text."""
        content = self._content(self._request("get_var", lang=lang, name=name, timeout=30))
        if content.get("status") != "ok" or not isinstance(content.get("json"), str):
            raise UsageError(_str(content.get("message"), 500) or f"cannot read {name}")
        return str(content["json"])

    def set_var(self, lang: str, name: str, json_text: str) -> None:
        """Assign a JSON value to a variable of an interpreter."""
        content = self._content(self._request("set_var", lang=lang, name=name,
                                              json=json_text, timeout=30))
        if content.get("status") != "ok":
            raise UsageError(_str(content.get("message"), 500) or f"cannot set {name}")

    def restart_interpreter(self, lang: str = "python") -> None:
        self._content(self._request("restart", lang=lang, timeout=15))

    def set_env(self, env: dict[str, str | None]) -> None:
        content = self._content(self._request("set_env", env=env, timeout=15))
        if content.get("status") != "ok":
            raise UsageError(_str(content.get("message"), 500) or "cannot set the environment")

    # ----- files --------------------------------------------------------------------------
    def _checked(self, frame: Frame) -> dict[str, Any]:
        content = self._content(frame)
        if content.get("status") != "ok":
            raise FileOperationError(_str(content.get("message"), 500) or "file operation failed",
                                     _str(content.get("code"), 20) or "EIO")
        return content

    def read_file(self, path: str, max_bytes: int = 256 * 2**20,
                  on_progress: Callable[[int], None] | None = None) -> bytes:
        """Read a regular file from /sandbox or /tmp (links, FIFOs, devices are refused)."""
        self.touch()
        call = self.channel.call("fs", op="read", path=path, max_bytes=max_bytes)
        chunks: list[bytes] = []
        total = 0
        try:
            for frame in call.frames(timeout=60):
                if frame["type"] == "data":
                    try:
                        chunk = base64.b64decode(_str(frame.get("b64"), 1 << 23), validate=True)
                    except (binascii.Error, ValueError):
                        raise ProtocolError("the sandbox sent invalid file data") from None
                    total += len(chunk)
                    if total > max_bytes:
                        raise FileOperationError(f"{path}: larger than {max_bytes} bytes",
                                                 "EFBIG")
                    chunks.append(chunk)
                    if on_progress is not None:
                        on_progress(total)
                else:
                    self._checked(frame)
        except SandboxTimeout:
            raise SessionGone(self.diagnose(stalled=True)) from None
        except SessionGone:
            raise SessionGone(self.diagnose()) from None
        finally:
            self.channel.forget(call)
        return b"".join(chunks)

    def write_file(self, path: str, data: bytes | str, *, parents: bool = False,
                   on_progress: Callable[[int], None] | None = None) -> int:
        """Write bytes (or UTF-8 text) to a file in /sandbox or /tmp, in bounded chunks."""
        raw = data.encode("utf-8") if isinstance(data, str) else bytes(data)
        step = protocol.FILE_CHUNK_BYTES
        offset = 0
        while True:
            chunk = raw[offset : offset + step]
            self._checked(self._request("fs", op="write", path=path, parents=parents,
                                        append=offset > 0,
                                        b64=base64.b64encode(chunk).decode("ascii"), timeout=60))
            offset += len(chunk)
            if on_progress is not None:
                on_progress(offset)
            if offset >= len(raw):
                return offset

    def list_dir(self, path: str = "/sandbox") -> tuple[list[FileInfo], bool]:
        """Directory entries (sorted, at most 10,000) and whether the list was truncated."""
        content = self._checked(self._request("fs", op="list", path=path))
        raw = content.get("entries")
        entries = [self._file_info(e) for e in raw] if isinstance(raw, list) else []
        return [e for e in entries if e is not None], content.get("truncated") is True

    def list_files(self, path: str = "/sandbox") -> list[FileInfo]:
        return self.list_dir(path)[0]

    def stat(self, path: str) -> FileInfo:
        info = self._file_info(self._checked(self._request("fs", op="stat", path=path))
                               .get("entry"))
        if info is None:
            raise ProtocolError("the sandbox agent sent a malformed file entry")
        return info

    def delete_file(self, path: str, recursive: bool = False) -> None:
        self._checked(self._request("fs", op="delete", path=path, recursive=recursive))

    def mkdir(self, path: str, parents: bool = False) -> None:
        self._checked(self._request("fs", op="mkdir", path=path, parents=parents))

    @staticmethod
    def _file_info(e: Any) -> FileInfo | None:
        if not isinstance(e, dict) or not isinstance(e.get("name"), str):
            return None
        kind = e.get("type")
        return FileInfo(name=e["name"][:4096],
                        type=kind if kind in ("file", "dir", "symlink", "other") else "other",
                        size=_int(e.get("size")), mtime=_float(e.get("mtime")) or 0.0,
                        mode=_int(e.get("mode"), 0))

    # ----- health and limits ----------------------------------------------------------------
    def stats(self, activity: bool = True) -> dict[str, Any]:
        """Raw cgroup counters from the agent (a monitor passes activity=False: not use)."""
        return self._content(self._request("stats", timeout=10, activity=activity))

    def health(self, threshold: float = 95.0, activity: bool = True) -> Health:
        """Memory, CPU (percent of one core since the last reading) and process use."""
        cur = self.stats(activity)
        prev = self._prev_stats
        age = -1.0
        if prev is not None:
            age = (_float(cur.get("taken_at")) or 0) - (_float(prev.get("taken_at")) or 0)
        if prev is None or not 0.05 <= age <= 30:
            prev = cur
            time.sleep(0.1)
            cur = self.stats(activity)
        self._prev_stats = cur
        wall = (_float(cur.get("taken_at")) or 0) - (_float(prev.get("taken_at")) or 0)
        cpu_ns = _int(cur.get("cpu_usage_ns")) - _int(prev.get("cpu_usage_ns"))
        cpu_pct = max(0.0, cpu_ns / (wall * 1e9) * 100) if wall > 0 else 0.0
        used = _int(cur.get("memory_usage"))
        limit = cur.get("memory_limit") if isinstance(cur.get("memory_limit"), int) else None
        mem_pct = 100.0 * used / limit if limit else 0.0
        pids = _int(cur.get("pids"))
        pids_limit = cur.get("pids_limit") if isinstance(cur.get("pids_limit"), int) else None
        reason = ""
        if mem_pct >= threshold:
            reason = f"Memory usage exceeds threshold: {threshold:g}%"
        elif pids_limit and pids >= pids_limit:
            reason = f"Process limit reached: {pids}/{pids_limit}"
        return Health(
            memory_usage=used, memory_limit=limit, memory_percent=round(mem_pct, 1),
            cpu_percent=round(cpu_pct, 1), pids=pids, pids_limit=pids_limit,
            uptime_s=_float(cur.get("uptime")) or 0.0, oom_kills=_int(cur.get("oom_kills")),
            status="unhealthy" if reason else "healthy", reason=reason,
        )

    def update_limits(self, **changes: object) -> Limits:
        """Change limits live ('256m', 0.5, '2m'...); cgroup limits apply without a restart."""
        fixed = {k for k in changes if k.replace("-", "_") in ("file_size", "sandbox_size",
                                                                 "tmp_size")}
        if fixed:
            raise LimitError(f"{', '.join(sorted(fixed))} cannot change on a running sandbox; "
                             "restart it with new limits")
        new = self.limits.changed(self.ceilings, **changes)
        if (new.memory, new.cpus, new.pids) != (self.limits.memory, self.limits.cpus,
                                                self.limits.pids):
            try:
                self.backend.update(self.container_id, new)
            except SessionGone:
                raise
            except SandboxError as exc:
                if new.memory < self.limits.memory:
                    raise LimitError(
                        f"memory cannot drop to {format_size(new.memory)} while the sandbox "
                        "uses more than that; free memory first") from exc
                raise
        self.limits = replace(new)
        self.touch()
        return self.limits

    def __repr__(self) -> str:
        return f"<Session {self.session_id} container={self.container_id[:12]}>"


def close_quietly(session: Session) -> None:
    """Close a session during cleanup, where a dead engine must not raise."""
    with contextlib.suppress(SandboxError):
        session.close()
