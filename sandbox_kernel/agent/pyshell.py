"""The IPython shell of the Python worker: display hook, publisher, tracebacks, `!cmd`.

Each of these becomes a frame of the current cell through `Output.emit`.
"""

from __future__ import annotations

import _signal  # type: ignore[import-not-found]  # the C module, no stub
import base64
import codecs
import functools
import importlib.util
import os
import signal
import subprocess
import sys
import weakref
from typing import Any

from . import pymagics
from .pycompile import compiler_class
from .pystreams import Output


def bundle(data: dict[str, Any]) -> dict[str, Any]:
    """A bundle for JSON: raw bytes (e.g. from `_repr_png_`) become base64, as in ipykernel."""
    return {k: base64.b64encode(v).decode("ascii") if isinstance(v, (bytes, bytearray)) else v
            for k, v in data.items()}


def system(cmd: str) -> int:
    """`!cmd` and `%system`: run through the shell and stream output as cell output."""
    proc = subprocess.Popen(cmd, shell=True, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            executable="/bin/bash" if os.path.exists("/bin/bash") else None)
    assert proc.stdout is not None
    decoder = codecs.getincrementaldecoder("utf-8")("replace")
    try:
        while True:
            chunk = proc.stdout.read1(65536)  # type: ignore[attr-defined]
            if not chunk:
                break
            sys.stdout.write(decoder.decode(chunk))
        sys.stdout.write(decoder.decode(b"", final=True))
        return proc.wait()
    except KeyboardInterrupt:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(2)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        raise


class ChildReaper:
    """Reaps the interpreter's exited children between cells (zombies count against pids).

    A child whose subprocess.Popen (or multiprocessing Process) still exists is polled
    through that object, so its exit status stays readable; other exited children are
    reaped directly. Only while no cell runs, and never if the user installed a SIGCHLD
    handler of their own.
    """

    def __init__(self) -> None:
        self.popens: weakref.WeakValueDictionary[int, Any] = weakref.WeakValueDictionary()
        popens = self.popens
        original = subprocess.Popen.__init__

        @functools.wraps(original)
        def init(popen: Any, *args: Any, **kwargs: Any) -> None:
            original(popen, *args, **kwargs)
            popens[popen.pid] = popen

        subprocess.Popen.__init__ = init  # type: ignore[method-assign,assignment]

    def reap(self) -> None:
        try:  # one syscall in the common case: no child has exited
            if os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT) is None:
                return
        except ChildProcessError:
            return
        subprocess._cleanup()  # type: ignore[attr-defined]  # Popens dropped unwaited
        mp_children: set[int] = set()
        if "multiprocessing" in sys.modules:
            mp_children = {p.pid for p in sys.modules["multiprocessing"].active_children()
                           if p.pid is not None}
        for pid in _zombie_children(os.getpid()):
            if pid in mp_children:
                continue
            popen = self.popens.get(pid)
            try:
                if popen is not None:
                    popen.poll()
                else:
                    os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass

    def _on_sigchld(self, signum: int, frame: object) -> None:
        try:
            self.reap()
        except Exception:  # noqa: BLE001 - reaping is housekeeping, never an error
            pass

    def idle(self, idle: bool) -> None:
        """Reap now and on every SIGCHLD while idle; leave children alone while a cell runs.

        Twice a cell, so through `_signal`: `signal`'s wrappers make enums (~10 us a call).
        """
        current = _signal.getsignal(signal.SIGCHLD)
        if idle and current in (_signal.SIG_DFL, None):
            _signal.signal(signal.SIGCHLD, self._on_sigchld)  # first, so none is missed
            self._on_sigchld(signal.SIGCHLD, None)
        elif not idle and current == self._on_sigchld:
            _signal.signal(signal.SIGCHLD, _signal.SIG_DFL)


def _zombie_children(parent: int) -> list[int]:
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                raw = f.read().decode("ascii", "replace")
        except OSError:
            continue
        fields = raw[raw.rfind(")") + 2 :].split()
        if len(fields) > 1 and fields[0] == "Z" and fields[1] == str(parent):
            found.append(int(name))
    return found


def _hook_class(out: Output) -> Any:
    from IPython.core.displayhook import DisplayHook

    class Hook(DisplayHook):
        def start_displayhook(self) -> None:
            self._frame: dict[str, Any] = {"type": "result", "data": {}, "metadata": {}}

        def write_output_prompt(self) -> None:
            self._frame["execution_count"] = self.prompt_count

        def write_format_data(self, format_dict: dict[str, Any],
                              md_dict: dict[str, Any] | None = None) -> None:
            self._frame["data"] = bundle(format_dict)
            self._frame["metadata"] = md_dict or {}

        def finish_displayhook(self) -> None:
            sys.stdout.flush()
            sys.stderr.flush()
            if self._frame.get("data"):
                self._frame.setdefault("execution_count", None)
                out.emit(self._frame)

    return Hook


def _publisher_class(out: Output) -> Any:
    from IPython.core.displaypub import DisplayPublisher

    class Publisher(DisplayPublisher):
        def publish(self, data: dict[str, Any], metadata: dict[str, Any] | None = None,
                    source: str | None = None, *, transient: dict[str, Any] | None = None,
                    update: bool = False, **kwargs: Any) -> None:
            out.emit({"type": "display", "data": bundle(data), "metadata": metadata or {},
                      "transient": transient or {}, "update": bool(update)})

        def clear_output(self, wait: bool = False) -> None:
            out.emit({"type": "clear", "wait": bool(wait)})

    return Publisher


#: The agent's own sources: no traceback shown to the user ends in them.
AGENT_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep
STDLIB_DIR = os.path.dirname(os.__file__) + os.sep
#: Packages the worker's shell runs on: IPython wraps sys.stdout.write to keep outputs.
SHELL_PACKAGES = ("IPython", "traitlets")


def own_dirs() -> tuple[str, ...]:
    """The agent's and its shell's sources (the packages found without importing them)."""
    dirs = [AGENT_DIR]
    for name in SHELL_PACKAGES:
        spec = importlib.util.find_spec(name)
        dirs.extend(os.path.join(p, "") for p in (spec and spec.submodule_search_locations) or ())
    return tuple(dirs)


def without_agent_frames(tb: Any) -> Any:
    """The traceback without the worker's own frames it ends in (the SIGINT handler, a stream
    write, IPython's output capture), and the standard library frames they called."""
    entries = []
    while tb is not None:
        entries.append(tb)
        tb = tb.tb_next
    cut, own = len(entries), own_dirs()
    for i in range(len(entries) - 1, -1, -1):
        name = entries[i].tb_frame.f_code.co_filename
        if name.startswith(own):
            cut = i
        elif not name.startswith(STDLIB_DIR):
            break
    if cut == 0:
        return None
    entries[cut - 1].tb_next = None
    return entries[0]


def _exit_class() -> Any:
    from IPython.core.autocall import ExitAutocall

    class Exit(ExitAutocall):
        """`exit`, `quit()`, `exit(keep_kernel=True)`: as ipykernel's ZMQExitAutocall."""

        def __call__(self, keep_kernel: bool = False) -> None:
            shell: Any = self._ip
            shell.keepkernel_on_exit = bool(keep_kernel)
            shell.ask_exit()

    return Exit


def _shell_class(out: Output) -> Any:
    from IPython.core.interactiveshell import InteractiveShell
    from traitlets import default

    exit_class = _exit_class()

    class ZMQInteractiveShell(InteractiveShell):
        """Named as ipykernel's shell: libraries test the class name to detect a notebook."""

        keepkernel_on_exit = False

        @default("exiter")
        def _exiter_default(self) -> Any:
            return exit_class(self)

        def _showtraceback(self, etype: Any, evalue: Any, stb: list[str]) -> None:
            out.emit({"type": "error", "ename": getattr(etype, "__name__", str(etype)),
                      "evalue": str(evalue), "traceback": list(stb)})

        def _get_exc_info(self, exc_tuple: Any = None) -> Any:
            etype, value, tb = super()._get_exc_info(exc_tuple)  # type: ignore[no-untyped-call]
            if isinstance(etype, type) and issubclass(etype, KeyboardInterrupt):
                tb = without_agent_frames(tb)
            return etype, value, tb

        def system(self, cmd: str) -> None:
            expanded: str = self.var_expand(cmd, depth=1)  # type: ignore[no-untyped-call]
            self.user_ns["_exit_code"] = system(expanded)

        def ask_exit(self) -> None:
            """ipykernel's ask_exit payload: the frontend decides (jupyter console leaves)."""
            out.emit({"type": "payload", "source": "ask_exit",
                      "keepkernel": bool(self.keepkernel_on_exit)})
            self.keepkernel_on_exit = False

        def enable_gui(self, gui: str | None = None) -> None:
            pass

        def should_run_async(self, raw_cell: str, *, transformed_cell: str | None = None,
                             preprocessing_exc_tuple: Any = None) -> bool:
            """Top-level `await`, `async for` and `async with` need their word: without
            one, IPython's trial compile of every cell is skipped (same answer)."""
            if transformed_cell is not None and "await" not in transformed_cell \
                    and "async" not in transformed_cell:
                return False
            return bool(super().should_run_async(
                raw_cell, transformed_cell=transformed_cell,
                preprocessing_exc_tuple=preprocessing_exc_tuple))

    return ZMQInteractiveShell


def make_shell(out: Output, page: Any) -> Any:
    """An InteractiveShell whose outputs are frames of the current cell."""
    from IPython.core import page as ipage
    from traitlets.config import Config

    config = Config()
    # This session's history in SQLite in memory, as `%history -l/-g` and `%rerun` read it
    # (no file in the sandbox to outlive it, no saving thread).
    config.HistoryManager.hist_file = ":memory:"
    shell = _shell_class(out).instance(config=config, displayhook_class=_hook_class(out),
                                       display_pub_class=_publisher_class(out),
                                       compiler_class=compiler_class())
    ipage.page = page
    pymagics.register(shell)
    return shell
