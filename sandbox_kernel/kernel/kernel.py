"""SandboxKernel: a Jupyter kernel whose cells run in a hardened Docker sandbox.

The kernel process never runs cell code. It parses each cell (cells.py), runs host
commands itself (commands.py), and sends everything else to the sandbox's agent,
publishing the agent's events on IOPub as they arrive, after the output policy has made
them safe for the browser (outputs.py).
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import fnmatch
import os
import re
import signal
import threading
import time
from typing import Any

import zmq
from ipykernel._version import kernel_protocol_version
from ipykernel.kernelbase import Kernel
from tornado.ioloop import PeriodicCallback

from .. import __version__
from ..errors import SandboxError, UsageError
from ..sandbox.session import Run, Session
from ..sandbox.spec import Limits
from .cells import parse_cell
from .commands import Commands
from .config import Sandbox
from .execution import Executor, clean_text
from .launcher import Launcher
from .outputs import OutputPolicy
from .widgets import Monitor, install_comms


class SandboxKernel(Kernel):
    """Python (and Node, shell) cells in a sandbox container, with full Jupyter messaging."""

    implementation = "sandbox-kernel"
    implementation_version = __version__
    banner = ("sandbox-kernel: every cell runs in a hardened Docker container "
              "(no network, read-only root, limits; %sandbox help).")
    language = "python"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        launcher = getattr(self.parent, "launcher", None)
        self.launcher: Launcher = launcher if isinstance(launcher, Launcher) else Launcher(
            Sandbox(parent=self))
        self.settings = self.launcher.settings
        self.policy = OutputPolicy(self.settings.sanitize_output, self.settings.allow_javascript)
        self.ceilings = self.launcher.ceilings
        self._busy = False
        self._last_activity = time.monotonic()
        self._notice: str | None = None
        self.current_run: Run | None = None
        self._history: list[tuple[int, int, str, str]] = []
        self.cell_output = ""
        self._allow_stdin = False
        self._python_version = "3.11"
        self._node_version = "22"
        if self.settings.language == "node":
            self.banner = self.banner.replace("every cell", "every JavaScript cell")
        self.last_cell: dict[str, Any] = {}
        self.commands = Commands(self)
        self.executor = Executor(self)
        self.comm_manager = install_comms(self)
        self.monitor = Monitor(self)
        self._monitor_pending = self.settings.monitor_on_start
        self._idle_timer: PeriodicCallback | None = None
        atexit.register(self._close_all)

    @property
    def limits(self) -> Limits:
        """Limits for the next sandbox this kernel starts (%sandbox limits changes them)."""
        return self.launcher.limits

    # ----- kernel_info --------------------------------------------------------------------
    @property
    def language_info(self) -> dict[str, Any]:  # type: ignore[override]
        if self.settings.language == "node":
            return {"name": "javascript", "version": self._node_version,
                    "mimetype": "application/javascript", "file_extension": ".js",
                    "pygments_lexer": "javascript", "codemirror_mode": "javascript",
                    "nbconvert_exporter": "javascript"}
        return {
            "name": "python",
            "version": self._python_version,
            "mimetype": "text/x-python",
            "file_extension": ".py",
            "pygments_lexer": "ipython3",
            "codemirror_mode": {"name": "ipython", "version": 3},
            "nbconvert_exporter": "python",
        }

    @property
    def kernel_info(self) -> dict[str, Any]:
        """Without the base class's debugpy import: this kernel has no debugger to offer."""
        return {
            "protocol_version": kernel_protocol_version,
            "implementation": self.implementation,
            "implementation_version": self.implementation_version,
            "language_info": self.language_info,
            "banner": self.banner,
            "help_links": [],
            "supported_features": ["kernel subshells"] if self._supports_kernel_subshells
            else [],
        }

    # ----- the sandbox's life -------------------------------------------------------------
    def start(self) -> None:
        super().start()
        self.launcher.start()  # no-op if the app already started it
        idle = self.settings.idle_timeout
        if idle > 0:
            every = max(0.25, min(60.0, idle / 4)) * 1000
            self._idle_timer = PeriodicCallback(self._check_idle, every)
            self._idle_timer.start()

    async def sandbox(self) -> Session:
        """The live sandbox, created or replaced as needed (with a notice for the user)."""
        try:
            session = await asyncio.wrap_future(self.launcher.start())
        except SandboxError:
            self.launcher.forget()  # try again on the next cell
            raise
        if not session.alive:
            reason = await asyncio.to_thread(session.diagnose)
            await asyncio.to_thread(self.launcher.discard, session)
            self.launcher.forget()
            self._notice = (f"[sandbox] {reason}; a fresh sandbox was started (variables and "
                            "/sandbox files from before are gone)")
            try:
                session = await asyncio.wrap_future(self.launcher.start())
            except SandboxError:
                self.launcher.forget()  # not the failed start again on the next cell
                raise
        self._note_versions(session)
        return session

    def _note_versions(self, session: Session) -> None:
        version = session.agent.get("python")
        if isinstance(version, str) and version[:1].isdigit():
            self._python_version = version[:20]

    def current_session(self) -> Session | None:
        """The sandbox if it is up, without waiting or creating one."""
        return self.launcher.current()

    async def restart_sandbox(self, notice: str | None = None) -> Session:
        """Throw the sandbox away and start a fresh, empty one."""
        old = self.current_session()
        self.launcher.forget()
        if old is not None:
            await asyncio.to_thread(self.launcher.discard, old)
        self._notice = notice
        return await self.sandbox()

    def _check_idle(self) -> None:
        idle = time.monotonic() - self._last_activity
        session = self.current_session()
        if self._busy or session is None or idle < self.settings.idle_timeout:
            return
        if session.busy:
            return
        self.launcher.forget()
        minutes = idle / 60
        span = f"{minutes:.0f} min" if minutes >= 1 else f"{idle:.0f} s"
        self._notice = f"[sandbox] the sandbox was reclaimed after {span} idle; state was reset"
        self.log.info("reclaiming idle sandbox %s after %.0f s", session.session_id, idle)
        threading.Thread(target=self.launcher.discard, args=(session,), daemon=True).start()

    def _close_all(self) -> None:
        if self._idle_timer is not None:
            self._idle_timer.stop()
        self.monitor.stop()
        self.launcher.close()

    async def do_shutdown(self, restart: bool) -> dict[str, Any]:
        await asyncio.to_thread(self._close_all)
        return {"status": "ok", "restart": restart}

    # ----- interrupts ---------------------------------------------------------------------
    def pre_handler_hook(self) -> None:
        self.saved_sigint_handler = signal.signal(signal.SIGINT, self._on_sigint)

    def post_handler_hook(self) -> None:
        signal.signal(signal.SIGINT, self.saved_sigint_handler)

    def _on_sigint(self, signum: int, frame: Any) -> None:
        """SIGINT from the frontend (or interrupt_request): interrupt the sandboxed cell."""
        run = self.current_run
        if run is None:
            return
        loop = self.io_loop.asyncio_loop  # type: ignore[attr-defined]
        loop.call_soon_threadsafe(self._forward_interrupt, run)

    def _forward_interrupt(self, run: Run) -> None:
        def send() -> None:
            try:
                run.interrupt(self.settings.interrupt_grace)
            except SandboxError as exc:
                self.log.warning("could not interrupt the sandbox: %s", exc)

        threading.Thread(target=send, daemon=True).start()

    # ----- publishing ---------------------------------------------------------------------
    def publish(self, msg_type: str, content: dict[str, Any]) -> None:
        self.send_response(self.iopub_socket, msg_type, content)

    def stream(self, name: str, text: str) -> None:
        self.publish("stream", {"name": name, "text": text})

    def publish_error(self, ename: str, evalue: str, traceback: list[str] | None = None) -> dict[
            str, Any]:
        content = {"ename": ename, "evalue": evalue,
                   "traceback": traceback if traceback is not None else [f"{ename}: {evalue}"]}
        self.publish("error", content)
        return {"status": "error", **content}

    # ----- execution ----------------------------------------------------------------------
    async def do_execute(self, code: str, silent: bool, store_history: bool = True,
                         user_expressions: dict[str, Any] | None = None,
                         allow_stdin: bool = False, *, cell_meta: Any = None,
                         cell_id: Any = None) -> dict[str, Any]:
        self._busy = True
        self.last_cell = {}
        self.cell_output = ""
        self._allow_stdin = allow_stdin
        try:
            reply = await self._execute(code, silent, store_history, user_expressions or {},
                                        allow_stdin)
        except UsageError as exc:
            reply = self.publish_error("UsageError", str(exc))
        except SandboxError as exc:
            reply = self.publish_error("SandboxError", str(exc))
        except Exception as exc:  # a cell without an execute_reply hangs every frontend
            self.log.exception("internal error running a cell")
            reply = self.publish_error("InternalError", f"the sandbox kernel failed on this cell "
                                       f"({type(exc).__name__}: {str(exc)[:500]}); the kernel "
                                       "is still running")
        finally:
            self._busy = False
            self._last_activity = time.monotonic()
        if not self.last_cell:
            self.last_cell = {"verdict": "ok" if reply.get("status") == "ok" else "error"}
        if store_history and not silent:
            self._history.append((1, self.execution_count, code, self.cell_output))
        reply.setdefault("execution_count", self.execution_count)
        reply.setdefault("payload", [])
        reply.setdefault("user_expressions", {})
        return reply

    async def _execute(self, code: str, silent: bool, store_history: bool,
                       user_expressions: dict[str, Any], allow_stdin: bool) -> dict[str, Any]:
        cell = parse_cell(code, self.settings.language)
        if isinstance(cell, tuple):
            return await self.commands.run_all(cell)
        session = await self.sandbox()
        if self._notice:
            self.stream("stderr", self._notice + "\n")
            self._notice = None
        if self._monitor_pending and not silent:
            self._monitor_pending = False
            self.monitor.show(await asyncio.to_thread(session.health))
        if cell.lang == "bash":
            return await self.executor.run_shell(session, cell)
        return await self.executor.run_code(session, cell, silent, store_history,
                                            user_expressions, allow_stdin)

    async def ask(self, prompt: str, password: bool = False) -> str | None:
        """An input_request to the frontend of the current cell; None without stdin."""
        if not self._allow_stdin:
            return None
        ident = self._get_shell_context_var(self._shell_parent_ident)
        parent = self.get_parent("shell")
        while True:
            try:
                self.stdin_socket.recv_multipart(zmq.NOBLOCK)
            except zmq.ZMQError:
                break
        assert self.session is not None
        self.session.send(self.stdin_socket, "input_request",
                          {"prompt": prompt, "password": password}, parent, ident=ident)
        while True:
            try:
                _, reply = self.session.recv(self.stdin_socket, zmq.NOBLOCK)
            except Exception:  # noqa: BLE001 - a malformed reply is skipped, as ipykernel does
                reply = None
            if reply is not None:
                content = reply.get("content") if isinstance(reply, dict) else None
                value = content.get("value") if isinstance(content, dict) else ""
                return value if isinstance(value, str) else ""
            await asyncio.sleep(0.02)

    async def ask_password(self, prompt: str) -> str | None:
        return await self.ask(prompt, password=True)

    def finish_metadata(self, parent: Any, metadata: dict[str, Any],
                        reply_content: dict[str, Any]) -> dict[str, Any]:
        metadata = super().finish_metadata(parent, metadata, reply_content)
        if self.last_cell:
            metadata["sandbox"] = dict(self.last_cell)
        return metadata

    async def usage_request(self, stream: Any, ident: Any, parent: Any) -> None:
        """Answer JupyterLab's kernel usage panel with the sandbox's figures, not ours."""
        content: dict[str, Any] = {"hostname": "sandbox", "pid": os.getpid()}
        session = self.current_session()
        if session is not None:
            try:
                h = await asyncio.to_thread(session.health, 95.0, False)
                limit = h.memory_limit or 0
                content.update(
                    kernel_cpu=h.cpu_percent, kernel_memory=h.memory_usage,
                    cpu_count=session.limits.cpus, host_cpu_percent=h.cpu_percent,
                    host_virtual_memory={"total": limit, "used": h.memory_usage,
                                         "available": max(0, limit - h.memory_usage),
                                         "percent": h.memory_percent},
                    sandbox={"pids": h.pids, "pids_limit": h.pids_limit,
                             "uptime_s": h.uptime_s, "status": h.status})
            except SandboxError as exc:
                content["sandbox"] = {"status": "unavailable", "reason": str(exc)}
        else:
            content["sandbox"] = {"status": "not running"}
        assert self.session is not None
        self.session.send(stream, "usage_reply", content, parent, ident)

    # ----- introspection ------------------------------------------------------------------
    async def _ask(self, method: str, *args: Any) -> dict[str, Any] | None:
        session = self.current_session()
        future = self.launcher.future
        if session is None and future is not None and not future.done():
            with contextlib.suppress(Exception):
                session = await asyncio.wait_for(asyncio.wrap_future(future), 30)
        if session is None:
            return None
        try:
            result: dict[str, Any] = await asyncio.to_thread(getattr(session, method), *args)
            return result
        except SandboxError as exc:
            self.log.info("%s failed: %s", method, exc)
            return None

    def _target(self, code: str, cursor_pos: int | None) -> tuple[str, str, int, int]:
        """(language, code, cursor, offset) of the cell part a completion request is about."""
        pos = len(code) if cursor_pos is None else max(0, min(cursor_pos, len(code)))
        lang = self.settings.language
        first, nl, rest = code.partition("\n")
        name = first.strip()[2:] if first.strip().startswith("%%") else ""
        if nl and name in ("node", "python", "python3") and pos > len(first):
            offset = len(first) + 1
            return ("node" if name == "node" else "python"), rest, pos - offset, offset
        return lang, code, pos, 0

    async def do_complete(self, code: str, cursor_pos: int | None) -> dict[str, Any]:
        lang, body, pos, offset = self._target(code, cursor_pos)
        reply = await self._ask("complete", body, pos, lang)
        empty = {"status": "ok", "matches": [], "cursor_start": pos + offset,
                 "cursor_end": pos + offset, "metadata": {}}
        if not reply or reply.get("status") != "ok":
            return empty
        matches = reply.get("matches")
        start, end = reply.get("cursor_start"), reply.get("cursor_end")
        if not isinstance(matches, list) or not isinstance(start, int) or not isinstance(
                end, int):
            return empty
        return {"status": "ok", "matches": [m for m in matches if isinstance(m, str)][:1000],
                "cursor_start": start + offset, "cursor_end": end + offset, "metadata": {}}

    async def do_inspect(self, code: str, cursor_pos: int | None, detail_level: int = 0,
                         omit_sections: Any = ()) -> dict[str, Any]:
        lang, body, pos, _ = self._target(code, cursor_pos)
        reply = await self._ask("inspect", body, pos, detail_level, lang)
        if not reply or reply.get("status") != "ok":
            return {"status": "ok", "found": False, "data": {}, "metadata": {}}
        return {"status": "ok", "found": reply.get("found") is True,
                "data": self.policy.bundle(reply.get("data")), "metadata": {}}

    async def do_is_complete(self, code: str) -> dict[str, Any]:
        try:
            cell = parse_cell(code, self.settings.language)
        except UsageError:
            return {"status": "invalid"}
        if isinstance(cell, tuple) or cell.lang == "bash":
            return {"status": "complete"}
        reply = await self._ask("is_complete", cell.body, cell.lang)
        if not reply or reply.get("status") not in ("complete", "incomplete", "invalid"):
            return {"status": "unknown"}
        out: dict[str, Any] = {"status": reply["status"]}
        if reply["status"] == "incomplete":
            out["indent"] = clean_text(reply.get("indent"), 100)
        return out

    async def do_history(self, hist_access_type: str, output: bool, raw: bool,
                         session: int | None = None, start: int | None = None,
                         stop: int | None = None, n: int | None = None,
                         pattern: str | None = None, unique: bool = False) -> dict[str, Any]:
        items = self._history
        if hist_access_type == "tail":
            items = items[-n:] if n else items
        elif hist_access_type == "range":
            lo = start or 0
            hi = stop if stop is not None else 1 << 62
            items = [h for h in items if lo <= h[1] < hi]
        elif hist_access_type == "search":
            matcher = re.compile(fnmatch.translate(pattern or "*"), re.S)
            items = [h for h in items if matcher.match(h[2])]
            if unique:
                seen: set[str] = set()
                kept = []
                for h in reversed(items):
                    if h[2] not in seen:
                        seen.add(h[2])
                        kept.append(h)
                items = list(reversed(kept))
            if n:
                items = items[-n:]
        else:
            items = []
        history = [(s, line, (src, out) if output else src) for s, line, src, out in items]
        return {"status": "ok", "history": history}
