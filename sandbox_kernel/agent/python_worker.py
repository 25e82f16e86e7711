"""The persistent Python interpreter that runs cells, started and watched by the agent.

It runs an IPython shell whose outputs, ``input()`` and ``sys.stdout``/``sys.stderr``
become frames on the current cell's pipe. It claims nothing the agent relies on: the
agent measures time, CPU and memory itself, so a cell that lies here only lies to itself.
"""

from __future__ import annotations

from .privilege import not_dumpable, prefer_oom

if __name__ == "__main__":  # first of all, before the slow imports: see privilege.py
    prefer_oom()
    not_dumpable()

import builtins
import getpass
import json
import os
import shutil
import signal
import sys
from typing import Any

from . import pycomm
from .pylink import Link
from .pyshell import ChildReaper, make_shell
from .pystreams import Output
from .sitepath import activate as activate_packages
from .sitepath import cwd_after_stdlib


class Worker:
    """One interpreter: the IPython shell plus the plumbing that makes it a kernel."""

    def __init__(self, link: Link) -> None:
        self.link = link
        self.pid = os.getpid()
        self.reaper = ChildReaper()
        self.out = Output(link)
        self.allow_stdin = False
        self.shell = make_shell(self.out, self.page)
        self.comms = pycomm.install(self.out.emit)
        pycomm.attach(self.shell, self.comms)

    def input(self, prompt: object = "", password: bool = False) -> str:
        if not self.allow_stdin:
            from IPython.core.error import StdinNotImplementedError

            raise StdinNotImplementedError(
                "input() is not available: this frontend does not answer input requests"
                " (batch runs such as nbclient or papermill have no stdin)"
            )
        self.out.emit({"type": "input_request", "prompt": str(prompt), "password": password})
        msg = self.link.recv_input()
        if msg is None:
            raise EOFError("the sandbox agent closed the input channel")
        if msg["value"] == "\x04":
            raise EOFError
        return str(msg["value"])

    def _begin(self, req: dict[str, Any]) -> None:
        events, stdout, stderr = self.link.take_pipes()
        sys.stdout.flush()
        sys.stderr.flush()
        self.out.flush()
        self.link.switch(events)
        os.dup2(stdout, 1)
        os.dup2(stderr, 2)
        os.close(stdout)
        os.close(stderr)
        self.out.begin(req["id"], req["output_cap"])
        self.allow_stdin = req["allow_stdin"]
        count = req["execution_count"]
        if isinstance(count, int) and count > 0:
            self.shell.execution_count = count

    def run(self, req: dict[str, Any]) -> None:
        try:
            self._begin(req)
        except OSError as exc:  # on the reply pipe: the cell's own pipes never arrived
            for frame in ({"type": "error", "ename": "OSError", "evalue": str(exc),
                           "traceback": [f"OSError: the cell could not start ({exc})"]},
                          {"type": "done", "status": "error", "user_expressions": {}}):
                self.link.reply({**frame, "id": req["id"]})
            return
        finally:
            self.link.refill()
        self.reaper.idle(False)
        status = "ok"
        try:
            self.link.in_user_code = True
            result = self.shell.run_cell(req["code"], store_history=req["store_history"],
                                         silent=req["silent"])
            self.link.in_user_code = False
            if not result.success:
                status = "error"
        except KeyboardInterrupt:
            self.link.in_user_code = False
            status = "error"
            self.out.emit({"type": "error", "ename": "KeyboardInterrupt", "evalue": "",
                           "traceback": ["KeyboardInterrupt"]})
        finally:
            self.link.in_user_code = False
            if os.getpid() != self.pid:
                self._leave_copy(status)
        results = self._expressions(req["user_expressions"])
        sys.stdout.flush()
        sys.stderr.flush()
        self.out.flush()
        self.reaper.idle(True)
        self.link.event({"id": req["id"], "type": "done", "status": status,
                         "user_expressions": results})
        self.out.run_id = 0
        self.link.settle()

    def _leave_copy(self, status: str) -> None:
        """A process the cell forked came back here (`while True: os.fork()`): it must not
        become a second interpreter, whatever its flush raises."""
        try:
            self.out.flush()
        finally:
            os._exit(0 if status == "ok" else 1)

    def _expressions(self, expressions: dict[str, str]) -> dict[str, Any]:
        if not expressions:
            return {}
        try:
            return dict(self.shell.user_expressions(expressions))
        except Exception as exc:  # noqa: BLE001 - reported, never fatal
            return {"error": {"status": "error", "ename": type(exc).__name__,
                              "evalue": str(exc), "traceback": []}}

    def page(self, strng: Any, start: int = 0, screen_lines: int = 0,
             pager_cmd: Any = None) -> None:
        """IPython's pager (`obj?`, `%pdoc`): a Jupyter 'page' payload, as ipykernel does."""
        data = strng if isinstance(strng, dict) else {"text/plain": str(strng)}
        self.out.emit({"type": "payload", "source": "page", "data": data, "start": int(start)})

    # ----- requests between cells ---------------------------------------------------
    def reply(self, req: dict[str, Any], **body: Any) -> None:
        self.link.reply({"id": req["id"], "type": "reply", "status": "ok", "body": body})

    def fail(self, req: dict[str, Any], message: str, code: str = "EINVAL") -> None:
        self.link.reply({"id": req["id"], "type": "reply", "status": "error", "code": code,
                         "message": message[:2000]})

    def complete(self, req: dict[str, Any]) -> None:
        # IPython 9's legacy shell.complete finds nothing here; use the completions API,
        # as ipykernel does.
        from IPython.core.completer import provisionalcompleter, rectify_completions

        code, pos = req["code"], min(req["cursor_pos"], len(req["code"]))
        with provisionalcompleter():
            found = list(rectify_completions(code, self.shell.Completer.completions(code, pos)))
        start, end = (found[0].start, found[0].end) if found else (pos, pos)
        matches = list(dict.fromkeys(c.text for c in found))[:10_000]
        self.reply(req, matches=matches, cursor_start=start, cursor_end=end, metadata={})

    def inspect(self, req: dict[str, Any]) -> None:
        from IPython.utils.tokenutil import token_at_cursor

        code, pos = req["code"], min(req["cursor_pos"], len(req["code"]))
        name = token_at_cursor(code, pos)
        try:
            data = self.shell.object_inspect_mime(name, detail_level=req["detail_level"])
            data.pop("text/html", None)
            self.reply(req, found=True, data=data, metadata={})
        except Exception:  # noqa: BLE001 - IPython raises KeyError and others when not found
            self.reply(req, found=False, data={}, metadata={})

    def is_complete(self, req: dict[str, Any]) -> None:
        status, indent = self.shell.input_transformer_manager.check_complete(req["code"])
        if status == "incomplete":
            self.reply(req, status=status, indent=" " * (indent or 0))
        else:
            self.reply(req, status=status)

    def set_env(self, req: dict[str, Any]) -> None:
        for k, v in req["env"].items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v

    def get_var(self, req: dict[str, Any]) -> None:
        name = req["name"]
        if name not in self.shell.user_ns:
            self.fail(req, f"{name} is not defined in Python")
            return
        try:
            text = json.dumps(self.shell.user_ns[name], allow_nan=False)
        except (TypeError, ValueError) as exc:
            self.fail(req, f"{name} is not JSON-serialisable ({exc})")
            return
        self.reply(req, json=text)

    def set_var(self, req: dict[str, Any]) -> None:
        try:
            self.shell.user_ns[req["name"]] = json.loads(req["json"])
        except ValueError as exc:
            self.fail(req, f"invalid JSON ({exc})")
            return
        self.reply(req)

    def comm(self, req: dict[str, Any]) -> None:
        """A frontend's comm message: its handler runs like a small cell, whose outputs go
        up the reply pipe under the request's id, then the reply."""
        self.out.run_id = req["id"]
        try:
            self.link.in_user_code = True
            getattr(self.comms, req["type"])(None, None, pycomm.message(req))
        except KeyboardInterrupt:
            self.out.emit({"type": "error", "ename": "KeyboardInterrupt", "evalue": "",
                           "traceback": ["KeyboardInterrupt"]})
        finally:
            self.link.in_user_code = False
            sys.stdout.flush()
            sys.stderr.flush()
            self.out.run_id = 0
        self.reply(req)

    def comm_info(self, req: dict[str, Any]) -> None:
        self.reply(req, comms=pycomm.comm_info(self.comms, req["target_name"]))

    def serve(self) -> None:
        handlers = {"run": self.run, "complete": self.complete, "inspect": self.inspect,
                    "is_complete": self.is_complete, "set_env": self.set_env,
                    "get_var": self.get_var, "set_var": self.set_var,
                    "sync": self.reply, "comm_open": self.comm, "comm_msg": self.comm,
                    "comm_close": self.comm, "comm_info": self.comm_info}
        self.reaper.idle(True)
        while True:
            try:
                req = self.link.recv()
            except KeyboardInterrupt:
                continue
            if req is None:
                return
            handler = handlers.get(req["type"])
            if handler is None:
                continue
            try:
                handler(req)
            except KeyboardInterrupt:
                continue
            except Exception as exc:  # noqa: BLE001 - report, never die on a bad request
                if req["type"] == "run":
                    self.out.emit({"type": "error", "ename": type(exc).__name__,
                                   "evalue": str(exc), "traceback": []})
                    self.link.event({"id": req["id"], "type": "done", "status": "error",
                                     "user_expressions": {}})
                elif req["type"] != "set_env":
                    self.fail(req, f"{type(exc).__name__}: {exc}", "EWORKER")


def _prepare_home() -> None:
    """HOME and the config dirs live on tmpfs, made by the worker (it owns them)."""
    home = os.environ.get("HOME", "")
    if not home.startswith("/tmp/"):
        return
    mpl = os.environ.get("MPLCONFIGDIR", os.path.join(home, ".config", "matplotlib"))
    for d in (home, mpl, os.environ.get("IPYTHONDIR", os.path.join(home, ".ipython"))):
        os.makedirs(d, exist_ok=True)
    seed = "/opt/sandbox-kernel/mplconfig"
    if os.path.isdir(seed) and not os.listdir(mpl):
        shutil.copytree(seed, mpl, dirs_exist_ok=True)


def main() -> None:
    ctrl, reply, sock = (int(x) for x in os.environ.pop("SANDBOX_WORKER_FDS").split(","))
    _prepare_home()
    activate_packages()  # the session's installed packages (docs/architecture.md, "Packages")
    cwd_after_stdlib()
    link = Link(ctrl, reply, sock)
    signal.signal(signal.SIGINT, link.on_sigint)
    worker = Worker(link)
    sys.stdout = worker.out.stdout
    sys.stderr = worker.out.stderr
    builtins.input = worker.input
    getpass.getpass = lambda prompt="Password: ", stream=None: worker.input(prompt, True)
    def after_fork() -> None:
        link.close_in_child()
        worker.out.after_fork()

    os.register_at_fork(after_in_child=after_fork)
    worker.out.flusher.start()
    worker.shell.run_cell("pass", store_history=False, silent=True)  # warm up: first cell fast
    link.reply({"id": 0, "type": "ready", "version": sys.version.split()[0]})
    worker.serve()


if __name__ == "__main__":
    main()
    sys.stdout = sys.__stdout__
    sys.stderr = sys.__stderr__
    os._exit(0)
