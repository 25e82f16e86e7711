"""The agent: one event loop (loop.py) that routes host requests to cells, commands and files.

It owns the workers (one per language, started on first use), reaps every process (it is
a child subreaper), and exits when the host closes its stdin. See docs/architecture.md.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from typing import Any

from . import cpus, procs
from .cells import Cells
from .commands import Commands
from .comms import CommRelay
from .frames import Frame, FrameError, check_fields
from .hostlink import HostLink, log
from .loop import Event, Loop, Timer
from .measure import Meter, host_limits
from .packages import Installer, open_staged
from .privilege import Identity
from .protocol import COMM_EVENTS, LANGUAGES, PROTOCOL_VERSION, REPLIES
from .spawn import new_token, node_argv, python_argv
from .transfers import Transfers
from .workers import Worker

_INTROSPECTION = ("complete", "inspect", "is_complete", "get_var", "set_var")
_FILE_OPS = ("read", "write", "chunk", "cancel", "list", "stat", "delete", "mkdir", "stage")
_WORKER_REPLY_TIMEOUT = 20.0


class Agent:
    def __init__(self, loop: Loop, ident: Identity) -> None:
        self.ident = ident
        self.loop = loop
        self.started = time.monotonic()
        self.stopped = Event()
        self.cwd = os.environ.get("SANDBOX_AGENT_WORKDIR") or (
            "/sandbox" if os.path.isdir("/sandbox") else os.getcwd())
        self.env = {k: v for k, v in os.environ.items()
                    if not k.startswith(("SANDBOX_AGENT", "SANDBOX_WORKER_UID"))
                    and k not in ("PWD", "OLDPWD")}
        self.user_env: set[str] = set()  # names %sandbox env set or unset
        self.meter = Meter(os.getpid())
        self.link = HostLink(loop, self.on_request, self.stop, log)
        self.cells = Cells(loop, self.link.send, self.meter, self.spare_for_cells)
        self.commands = Commands(loop, self.link.send, self.meter, ident, self.spare_for_command)
        self.installer = Installer(loop, self.link.send, self.meter, ident, self.spare_for_command)
        self.transfers = Transfers(loop, self.link.reply, self.link.fail, self.link.send_chunk,
                                   self.link.drain, ident, self._open_staged)
        self.comms = CommRelay(loop, self.link.send, self.link.fail, self.link.reply,
                               lambda w: w in self.cells.runs)
        self.workers: dict[str, Worker] = {}
        self.pending: dict[int, tuple[int, str, Worker, Timer]] = {}
        self.retiring: list[Worker] = []
        self.claim_timer: Timer | None = None

    # ----- lifecycle --------------------------------------------------------------------
    async def serve(self) -> None:
        self.link.open()
        self.link.listeners.append(self._pause)
        self.loop.add_signal_handler(signal.SIGCHLD, self.reap)
        self.loop.add_signal_handler(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)
        claim = os.environ.get("SANDBOX_AGENT_CLAIM_TIMEOUT", "")
        if claim.isdigit() and int(claim) > 0:
            self.claim_timer = self.loop.call_later(int(claim), self._unclaimed)
        for kind in os.environ.get("SANDBOX_AGENT_PRESTART", "python").split(","):
            if kind in LANGUAGES:
                self.worker(kind)
        await self.stopped.wait()
        self.shutdown()

    def stop(self) -> None:
        self.stopped.set()

    def _unclaimed(self) -> None:
        log("pooled sandbox was never claimed; exiting")
        self.stop()

    def shutdown(self) -> None:
        """Nothing started in the sandbox outlives the agent (the local backend relies on it)."""
        self.transfers.abort_all()
        for _ in range(20):
            left = [p.pid for p in procs.descendants(os.getpid()) if p.state != "Z"]
            if not left:
                return
            procs.kill_all(left)
            time.sleep(0.01)

    def _pause(self, paused: bool) -> None:
        for w in self.workers.values():
            w.pause(paused)
        self.commands.pause(paused)
        self.installer.commands.pause(paused)

    # ----- processes ------------------------------------------------------------------
    def worker(self, kind: str) -> Worker:
        w = self.workers.get(kind)
        if w is None or w.exited:
            limit = self.meter.sample().memory_limit if kind == "node" else None
            argv = python_argv() if kind == "python" else node_argv(limit)
            w = Worker(self.loop, kind, argv, self.child_env(), self.cwd, self.ident,
                       self.on_worker_frame, self.cells.on_output, log)
            self.workers[kind] = w
            if self.link.paused:
                w.pause(True)
        return w

    def _command_roots(self) -> frozenset[int]:
        return self.commands.roots() | self.installer.commands.roots()

    def child_env(self) -> dict[str, str]:
        """The environment of what the agent starts: thread pools sized to the CPU limit
        (unless the user set them), and the limit itself where no cgroup shows it."""
        limit = cpus.quota()
        told = None if limit is not None else host_limits().get("cpus")
        extra = cpus.thread_env(limit or told)
        if told:
            extra[cpus.LIMIT_ENV] = str(told)
        return {**self.env, **{k: v for k, v in extra.items() if k not in self.user_env}}

    def spare_for_cells(self) -> procs.Spare:
        return procs.Spare(frozenset(w.pid for w in self.workers.values()),
                           self._command_roots())

    def spare_for_command(self, pid: int) -> procs.Spare:
        workers = frozenset(w.pid for w in self.workers.values())
        return procs.Spare(workers, workers | (self._command_roots() - {pid}))

    def _open_staged(self, name: str) -> int:
        return open_staged(self.installer.pdir, name)

    def reap(self) -> None:
        """SIGCHLD: collect every exited child, ours or an orphan of cell code."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            self._exited(pid, status)

    def _exited(self, pid: int, status: int) -> None:
        for w in [*self.workers.values(), *self.retiring]:
            if w.pid == pid:
                self._worker_exited(w, os.waitstatus_to_exitcode(status))
                return
        self.commands.on_exit(pid, status)  # or an orphan: nothing more to do
        self.installer.commands.on_exit(pid, status)

    def _worker_exited(self, w: Worker, code: int) -> None:
        w.proc.returncode = code
        w.drain()
        heap_oom = b"heap out of memory" in w.stderr_tail
        self.cells.on_exit(w, code, heap_oom)
        self.comms.worker_gone(w)
        for token, (rid, _, pw, timer) in list(self.pending.items()):
            if pw is w:
                timer.cancel()
                del self.pending[token]
                self.link.fail(rid, "EPIPE", f"the {w.kind} interpreter restarted; try again")
        w.close()
        if w in self.retiring:
            self.retiring.remove(w)
        elif self.workers.get(w.kind) is w:
            del self.workers[w.kind]
            if not self.stopped.is_set():
                self.worker(w.kind)  # at once, so the next cell does not wait

    # ----- worker frames -------------------------------------------------------------
    def on_worker_frame(self, w: Worker, frame: Frame) -> None:
        ftype = frame["type"]
        if ftype == "ready":
            w.ready, w.version = True, frame["version"]
            w.prepare()
        elif ftype == "reply" and frame["id"] in self.pending:
            self._worker_reply(w, frame)
        elif self.comms.owns(frame):
            self.comms.on_frame(w, frame)
        else:
            self.cells.on_frame(w, frame)

    def _worker_reply(self, w: Worker, frame: Frame) -> None:
        entry = self.pending.get(frame["id"])
        if entry is None or entry[2] is not w:
            return
        rid, rtype, _, timer = self.pending.pop(frame["id"])
        timer.cancel()
        if frame["status"] != "ok":
            self.link.fail(rid, frame.get("code", "EWORKER"), frame.get("message", "failed"))
            return
        body = frame.get("body") or {}
        try:
            check_fields(f"{rtype} reply", REPLIES[rtype], body, envelope=())
        except FrameError as exc:
            self.link.fail(rid, "EPROTO", f"the {w.kind} interpreter answered badly ({exc})")
            return
        self.link.reply(rid, **body)

    # ----- host requests ------------------------------------------------------------
    def on_request(self, req: Frame) -> None:
        try:
            self._dispatch(req)
        except Exception as exc:  # noqa: BLE001 - one request must never stop the agent
            log(f"request {req['type']} failed: {type(exc).__name__}: {exc}")
            self.link.fail(req["id"], "EAGENT", f"{type(exc).__name__}: {exc}")

    def _dispatch(self, req: Frame) -> None:
        rtype, rid = req["type"], req["id"]
        if rtype in _FILE_OPS:
            self.transfers.handle(req)
        elif rtype == "run":
            self.cells.start(req, self.worker(req["lang"]))
        elif rtype == "input_reply":
            for w, run in self.cells.runs.items():
                if run.id == rid:
                    w.send({"id": run.token, "type": "input_reply", "value": req["value"]})
        elif rtype in _INTROSPECTION:
            self._introspect(req)

        elif rtype == "exec":
            self.commands.start(req, self.child_env(), self.cwd)
        elif rtype == "install":
            self.installer.start(req)
        elif rtype == "interrupt":
            delivered = self.cells.interrupt(req["target"], req["grace"]) or \
                self.commands.interrupt(req["target"]) or \
                self.installer.commands.interrupt(req["target"]) or \
                self.comms.interrupt(req["target"])
            self.link.reply(rid, delivered=delivered)
        else:
            self._control(req)

    def _control(self, req: Frame) -> None:
        if req["type"] in COMM_EVENTS or req["type"] == "comm_info":
            self.comms.start(req, self.worker("python"))
            return
        handler = {"hello": self._hello, "stats": self._stats, "restart": self._restart,
                   "set_env": self._set_env, "shutdown": self._shutdown,
                   "link": self.link.take_link}.get(req["type"])
        if handler is not None:
            handler(req)

    def _hello(self, req: Frame) -> None:
        if self.claim_timer is not None:
            self.claim_timer.cancel()
        self.link.send({"id": req["id"], "type": "hello", "version": PROTOCOL_VERSION,
                        "pid": os.getpid(), "agent_uid": self.ident.agent_uid,
                        "worker_uid": self.ident.worker_uid, "python": sys.version.split()[0],
                        "languages": list(LANGUAGES), "measure": self.meter.kind})

    def _stats(self, req: Frame) -> None:
        s = self.meter.sample()
        self.link.reply(req["id"], **s.as_dict(), uptime=time.monotonic() - self.started,
                        busy=self.cells.busy() or bool(self.commands.running or
                                                       self.installer.commands.running),
                        workers={k: w.pid for k, w in self.workers.items()})

    def _restart(self, req: Frame) -> None:
        current = self.workers.pop(req["lang"], None)
        if current is not None:
            self.retiring.append(current)
            current.kill()  # closed when its exit is reaped
        self.worker(req["lang"])
        self.link.reply(req["id"])

    def _set_env(self, req: Frame) -> None:
        for k, v in req["env"].items():
            self.user_env.add(k)
            if v is None:
                self.env.pop(k, None)
            else:
                self.env[k] = v
        for w in self.workers.values():
            w.send({"id": new_token(), "type": "set_env", "env": req["env"]})
        self.link.reply(req["id"])

    def _shutdown(self, req: Frame) -> None:
        self.link.reply(req["id"])
        self.loop.call_soon(self.stop)

    def _introspect(self, req: Frame) -> None:
        w = self.worker(req["lang"])
        if w in self.cells.runs:
            self.link.fail(req["id"], "EBUSY", "the interpreter is busy running a cell")
            return
        token = new_token()
        timer = self.loop.call_later(_WORKER_REPLY_TIMEOUT, self._reply_timeout, token)
        self.pending[token] = (req["id"], req["type"], w, timer)
        fields: dict[str, Any] = {k: v for k, v in req.items() if k not in ("id", "lang")}
        w.send({**fields, "id": token})

    def _reply_timeout(self, token: int) -> None:
        entry = self.pending.pop(token, None)
        if entry is not None:
            self.link.fail(entry[0], "ETIMEDOUT", "the interpreter did not answer in time")
