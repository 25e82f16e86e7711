"""The kernel application: `python -m sandbox_kernel -f CONNECTION_FILE`.

An IPKernelApp with its own name, so settings live in `sandbox_kernel_config.py` in the
Jupyter config directories (`jupyter --paths`), or on the command line
(`--Sandbox.memory=1g`). Config files are never loaded from the notebook's directory: a
notebook is untrusted, and a config file is Python that runs on the host.
"""

from __future__ import annotations

import atexit
import logging
import os
from collections.abc import Iterator
from typing import Any

import zmq
from ipykernel.kernelapp import IPKernelApp
from jupyter_core.paths import jupyter_config_path
from traitlets import Any as AnyTrait
from traitlets import Instance, Type, Unicode

from .config import Sandbox
from .config_check import check_settings
from .config_sources import ConfigSources
from .early import EarlyStart
from .early_sockets import CHANNELS, EarlyContext
from .kernel import SandboxKernel
from .launcher import Launcher

_CONTROL_JOIN_S = 5.0


class SandboxKernelApp(IPKernelApp):
    """Launches a SandboxKernel."""

    name = Unicode("sandbox-kernel")
    description = "A Jupyter kernel that runs every cell in a hardened Docker sandbox."
    kernel_class = Type(SandboxKernel, help="The kernel class to launch.").tag(config=True)
    classes = [*IPKernelApp.classes, SandboxKernel, Sandbox]
    early = Instance(EarlyStart, allow_none=True,
                     help="A sandbox started before ipykernel was imported (early.py).")
    early_sockets = AnyTrait(None, allow_none=True,
                             help="(EarlyContext, connection info) from early_sockets.py.")
    launcher: Launcher | None = None
    config_sources: ConfigSources | None = None

    def init_config_files(self) -> None:
        """Only Jupyter's config directories; never the working directory or a profile.

        Runs after init_profile_dir (which would add the IPython profile) and before the
        config files are loaded, so this list is the whole search path.
        """
        self.config_file_paths = list(jupyter_config_path())
        self.config_sources = ConfigSources(self.cli_config)

    def _load_config_files(  # type: ignore[override]
            self, basefilename: str, path: Any = None, log: Any = None,
            raise_config_file_errors: bool = False) -> Iterator[tuple[Any, str]]:
        """traitlets' loop, remembering which file set what (messages name the file)."""
        if self.config_sources is None:
            self.config_sources = ConfigSources(self.cli_config)
        return self.config_sources.load(
            (self.python_config_loader_class, self.json_config_loader_class), basefilename,
            path, log)

    def init_connection_file(self) -> None:
        """The configuration is loaded by now: start the sandbox while ipykernel sets up.

        A bad setting never stops the kernel here: it is reported by every cell instead.
        """
        logging.captureWarnings(True)  # library warnings go to the kernel's log, not cells
        known = tuple(c.__name__ for c in self._classes_inc_parents())
        checked = check_settings(self.config, sources=self.config_sources,
                                 known_sections=known)
        early = self.early.take(checked) if self.early is not None else None
        self.launcher = early or Launcher(checked.settings, checked)
        self.launcher.start()  # in a thread: errors surface at the first cell
        super().init_connection_file()

    def _ip_default(self) -> str:
        """Loopback, without jupyter_client's scan of the interfaces (it imports psutil)."""
        return str(super()._ip_default()) if self.transport == "ipc" else "127.0.0.1"

    def init_pdb(self) -> None:
        """Nothing to make interruptible: no user code runs in this process, so ipykernel's
        pdb patch (which imports pdb and IPython's debugger) is left out."""

    def init_sockets(self) -> None:
        """Take over the sockets bound before the imports (early_sockets.py) if they are
        the ones this app would bind; otherwise bind as ipykernel does."""
        early, self.early_sockets = self.early_sockets, None
        if early is None:
            super().init_sockets()
            return
        context, info = early
        if (self.transport != "tcp" or self.ip != info.get("ip", "127.0.0.1")
                or any(getattr(self, f"{n}_port") != info[f"{n}_port"] for n, _ in CHANNELS)
                or getattr(self, "curve_secretkey", None) is not None):
            context.close_waiting()
            super().init_sockets()
            return
        self.log.info("Starting the kernel at pid: %i", os.getpid())
        self.context = context
        atexit.register(self.close)
        self.shell_socket = context.socket(zmq.ROUTER)
        self.stdin_socket = context.socket(zmq.ROUTER)
        for s, name in ((self.shell_socket, "shell_port"), (self.stdin_socket, "stdin_port")):
            s.linger = 1000
            setattr(self, name, self._bind_socket(s, getattr(self, name)))
        if hasattr(zmq, "ROUTER_HANDOVER"):  # as ipykernel: zeromq reconnect problems
            self.shell_socket.router_handover = self.stdin_socket.router_handover = 1
        self.init_control(context)
        self.init_iopub(context)
        context.close_waiting()
        self.log.debug("Took over the channels bound before the imports")

    def _bind_socket(self, s: Any, port: int) -> Any:
        """An early socket is bound already (moved if ipykernel asked in another order)."""
        context = self.context
        if isinstance(context, EarlyContext):
            bound = context.bound_port(s)
            if bound == port:
                return port
            if bound is not None:
                s.unbind(s.getsockopt_string(zmq.LAST_ENDPOINT))
            context.release(port)
        return super()._bind_socket(s, port)

    def start(self) -> None:
        """After the shell loop stops (a shutdown), the control thread ends the message it
        is on before the interpreter exits: its last flush waits for the IOPub thread, which
        ipykernel stops at exit, and in that order it waited out its 10 s timeout (the
        frontend killed the kernel meanwhile)."""
        super().start()
        control = self.control_thread
        if control is not None and control.is_alive():
            control.stop()
            control.join(timeout=_CONTROL_JOIN_S)


def main(argv: Any = None, early: EarlyStart | None = None,
         sockets: tuple[EarlyContext, dict[str, Any]] | None = None) -> None:
    SandboxKernelApp.launch_instance(argv=argv, early=early, early_sockets=sockets)
