"""SandboxKernel: a Jupyter kernel whose cells run in a hardened Docker sandbox.

The kernel process never runs cell code. It parses each cell (cells.py), runs host
commands itself (commands.py), and sends everything else to the sandbox's agent through
the async session core, publishing events on IOPub as they arrive after the output policy
has made them safe for the browser (execution.py, outputs.py).
"""

from __future__ import annotations

import asyncio
import atexit
import os
from typing import TYPE_CHECKING, Any

from .. import __version__
from ..errors import SandboxError, UsageError
from ..sandbox.runs import CellRun
from ..sandbox.session import AsyncSession
from ..sandbox.spec import Limits
from .cells import Code, parse_cell
from .comm_bridge import bridge_comms
from .commands import Commands
from .execution import Executor, Outcome, error_content
from .idle import IdleReclaim
from .interrupts import Interrupts
from .introspection import Introspection
from .launcher import Launcher
from .nethint import NetworkHint
from .pacing import PacedIOPub
from .policy import History
from .requests import JupyterKernel
from .stdin import language_info
from .usage import usage_content
from .widgets import Monitor, install_comms

if TYPE_CHECKING:
    import logging

    import zmq.asyncio

    from ..sandbox.install_policy import InstallPolicy
    from ..sandbox.installs import Installs
    from .channels import IOPubThread
    from .wire import Wire


class SandboxKernel(JupyterKernel):
    """Python (and Node, shell) cells in a sandbox container, with full Jupyter messaging."""

    implementation = "sandbox-kernel"
    implementation_version = __version__
    banner = ("sandbox-kernel: every cell runs in a hardened Docker container "
              "(no network, read-only root, limits; %sandbox help).")
    language = "python"

    def __init__(self, wire: Wire, shell: zmq.asyncio.Socket, control: zmq.asyncio.Socket,
                 stdin: zmq.asyncio.Socket, iopub: IOPubThread, log: logging.Logger,
                 ports: dict[str, int], launcher: Launcher) -> None:
        super().__init__(wire, shell, control, stdin, iopub, log, ports)
        self.launcher = launcher
        self.settings = self.launcher.settings
        self.policy = self.settings.output_policy()
        self.paced_iopub: PacedIOPub | None = None
        self.ceilings = self.launcher.ceilings
        self._busy = False
        self._notice: str | None = None
        self.current_run: CellRun | None = None
        self.history = History()
        self._accounting: dict[str, Any] = {}
        self._allow_stdin = False
        self._python_version = "3.11"
        self._node_version = "22"
        if self.settings.language == "node":
            self.banner = self.banner.replace("every cell", "every JavaScript cell")
        install_policy = self.settings.install_policy()
        self.commands = Commands(self, lambda: _installs(install_policy))
        self.nethint = NetworkHint()
        self.executor = Executor(self.nethint.watch(self), self.policy, self.ceilings,
                                 self.settings.interrupt_grace)
        self.introspection = Introspection(self.launcher, self.policy, self.settings.language)
        self.comm_manager = install_comms(self)
        self.comms = bridge_comms(self, self.comm_manager)  # the sandbox's widgets
        self.monitor = Monitor(self)
        self._monitor_pending = self.settings.monitor_on_start
        self.idle_reclaim = IdleReclaim(self.launcher, self.settings.idle_timeout,
                                        lambda: self._busy, self._set_notice, self.log)
        self.interrupts = Interrupts(
            lambda: self.current_run, self.current_session,
            lambda: self._busy or self.comms.handling, self.settings.interrupt_grace, self.log)
        atexit.register(self._close_all)

    @property
    def limits(self) -> Limits:
        """Limits for the next sandbox this kernel starts (%sandbox limits changes them)."""
        return self.launcher.limits

    # ----- kernel_info --------------------------------------------------------------------
    @property
    def language_info(self) -> dict[str, Any]:  # type: ignore[override]
        return language_info(self.settings.language, self._python_version, self._node_version)

    # ----- the sandbox's life -------------------------------------------------------------
    def start(self) -> None:
        """On the event loop, before the first request is read."""
        self.paced_iopub = PacedIOPub(self.iopub_thread)
        self.launcher.start()  # no-op if the app already started it
        self.idle_reclaim.start()

    async def sandbox(self) -> AsyncSession:
        """The live sandbox, created or replaced as needed (with a notice for the user)."""
        old = self.launcher.dead()
        if old is not None:
            reason = await old.diagnose()
            await self.launcher.discard(old)
            self._notice = (f"[sandbox] {reason}; a fresh sandbox was started (variables and "
                            "/sandbox files from before are gone)")
        session = await self.launcher.session()
        version = session.agent.get("python")
        if isinstance(version, str) and version[:1].isdigit():
            self._python_version = version[:20]
        return session

    def current_session(self) -> AsyncSession | None:
        """The sandbox if it is up, without waiting or creating one."""
        return self.launcher.current()

    async def restart_sandbox(self, notice: str | None = None) -> AsyncSession:
        """Throw the sandbox away and start a fresh, empty one."""
        old = self.launcher.current()
        if old is not None:
            await self.launcher.discard(old)
        self.launcher.forget()
        self._notice = notice
        return await self.launcher.session()

    def _set_notice(self, notice: str) -> None:
        self._notice = notice

    def _close_all(self) -> None:
        self.idle_reclaim.stop()
        self.monitor.stop()
        self.launcher.close()

    async def do_shutdown(self, restart: bool) -> dict[str, Any]:
        await asyncio.to_thread(self._close_all)
        return {"status": "ok", "restart": restart}

    # ----- interrupts (interrupts.py) ---------------------------------------------------
    def on_interrupt(self) -> None:
        self.interrupts.on_sigint()

    # ----- publishing (the executor's Frontend) ---------------------------------------------
    def publish(self, msg_type: str, content: dict[str, Any]) -> None:
        self.send_response(self.paced_iopub or self.iopub_socket, msg_type, content)

    async def iopub_room(self) -> None:
        """Wait while too many published messages are still queued (see pacing.py)."""
        if self.paced_iopub is not None:
            await self.paced_iopub.room()

    def iopub_lost(self) -> int:
        return self.paced_iopub.take_lost() if self.paced_iopub is not None else 0

    def stream(self, name: str, text: str) -> None:
        self.publish("stream", {"name": name, "text": text})

    def publish_error(self, ename: str, evalue: str) -> dict[str, Any]:
        content = error_content(ename, evalue)
        self.publish("error", content)
        return {"status": "error", **content}

    # ----- execution ----------------------------------------------------------------------
    async def do_execute(self, code: str, silent: bool, store_history: bool = True,
                         user_expressions: dict[str, Any] | None = None,
                         allow_stdin: bool = False, *, cell_meta: Any = None,
                         cell_id: Any = None) -> dict[str, Any]:
        self._busy = True
        self._allow_stdin = allow_stdin
        published = self.comms.published
        try:
            outcome = await self._execute(code, silent, store_history, user_expressions or {},
                                          allow_stdin)
        except UsageError as exc:
            outcome = Outcome(self.publish_error("UsageError", str(exc)), {"verdict": "error"})
        except SandboxError as exc:
            outcome = Outcome(self.publish_error("SandboxError", str(exc)), {"verdict": "error"})
        except Exception as exc:  # a cell without an execute_reply hangs every frontend
            self.log.exception("internal error running a cell")
            outcome = Outcome(self.publish_error(
                "InternalError", f"the sandbox kernel failed on this cell ({type(exc).__name__}"
                f": {str(exc)[:500]}); the kernel is still running"), {"verdict": "error"})
        finally:
            self._busy = False
            self.idle_reclaim.touch()
        await self.comms.settle(published)
        self._accounting = outcome.accounting
        if store_history and not silent:
            self.history.add(1, self.execution_count, code, outcome.result_text)
        reply = outcome.reply
        reply.setdefault("execution_count", self.execution_count)
        reply.setdefault("payload", [])
        reply.setdefault("user_expressions", {})
        return reply

    async def _execute(self, code: str, silent: bool, store_history: bool,
                       user_expressions: dict[str, Any], allow_stdin: bool) -> Outcome:
        if not silent:  # unknown settings: one line each, every cell (config_check.py)
            for line in self.launcher.config_warnings:
                self.stream("stderr", line + "\n")
        cell = parse_cell(code, self.settings.language)
        if isinstance(cell, tuple):
            return Outcome(await self.commands.run_all(cell), {"verdict": "ok"})
        outcome = await self.commands.packages.run_cell(cell, lambda part: self._run_code(
            part, silent, store_history, user_expressions, allow_stdin))
        hint = self.nethint.take()  # the first time output showed the network failing
        if hint and not silent:
            self.stream("stderr", hint)
        return outcome

    async def _run_code(self, cell: Code, silent: bool, store_history: bool,
                        user_expressions: dict[str, Any], allow_stdin: bool) -> Outcome:
        session = await self.sandbox()
        self.idle_reclaim.ran_cells |= not silent  # a frontend's silent code is not state
        if self._notice:
            self.stream("stderr", self._notice + "\n")
            self._notice = None
        if self._monitor_pending and not silent:
            self._monitor_pending = False
            self.monitor.show(await session.health())
        if cell.lang == "bash":
            return await self.executor.run_shell(session, cell)
        return await self.executor.run_code(
            session, cell, execution_count=self.execution_count, silent=silent,
            store_history=store_history, user_expressions=user_expressions,
            allow_stdin=allow_stdin, on_start=self._set_run)

    def _set_run(self, run: CellRun | None) -> None:
        self.current_run = run

    async def ask(self, prompt: str, password: bool = False) -> str | None:
        """An input_request to the frontend of the current cell; None without stdin."""
        if not self._allow_stdin:
            return None
        return await self.input_request(prompt, password)

    async def ask_password(self, prompt: str) -> str | None:
        return await self.ask(prompt, password=True)

    def finish_metadata(self, parent: Any, metadata: dict[str, Any],
                        reply_content: dict[str, Any]) -> dict[str, Any]:
        metadata = super().finish_metadata(parent, metadata, reply_content)
        if self._accounting:
            metadata["sandbox"] = dict(self._accounting)
        return metadata

    async def usage_request(self, stream: Any, ident: Any, parent: Any) -> None:
        """Answer JupyterLab's kernel usage panel with the sandbox's figures, not ours."""
        content = await usage_content(self.current_session(), os.getpid(), self.limits)
        self.send(stream, "usage_reply", content, parent, ident)

    # ----- introspection and history ------------------------------------------------------
    async def do_complete(self, code: str, cursor_pos: int | None) -> dict[str, Any]:
        return await self.introspection.complete(code, cursor_pos)

    async def do_inspect(self, code: str, cursor_pos: int | None, detail_level: int = 0,
                         omit_sections: Any = ()) -> dict[str, Any]:
        return await self.introspection.inspect(code, cursor_pos, detail_level)

    async def do_is_complete(self, code: str) -> dict[str, Any]:
        return await self.introspection.is_complete(code)

    async def do_history(self, hist_access_type: str, output: bool, raw: bool,
                         session: int | None = None, start: int | None = None,
                         stop: int | None = None, n: int | None = None,
                         pattern: str | None = None, unique: bool = False) -> dict[str, Any]:
        return {"status": "ok", "history": self.history.query(
            hist_access_type, output, start, stop, n, pattern, unique)}


def _installs(policy: InstallPolicy) -> Installs:
    """Live installs (packaging and the fetchers are imported at the first one)."""
    from ..sandbox.installs import Installs

    return Installs(policy)
