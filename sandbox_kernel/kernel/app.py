"""The kernel application: `python -m sandbox_kernel -f CONNECTION_FILE`.

A traitlets Application named sandbox-kernel, so settings live in
`sandbox_kernel_config.py` in the Jupyter config directories (`jupyter --paths`), or on the
command line (`--Sandbox.memory=1g`). Config files are never loaded from the notebook's
directory: a notebook is untrusted, and a config file is Python that runs on the host.
It is not ipykernel's app: no user code runs in this process, so none of what ipykernel
sets up for it is imported (docs/architecture.md, "The kernel process").
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Iterator
from typing import Any

from jupyter_core.paths import jupyter_config_path
from traitlets import Any as AnyTrait
from traitlets import Instance, Unicode
from traitlets.config import Application

from .config import Sandbox
from .config_check import check_settings
from .config_sources import ConfigSources
from .connection import Connection
from .early import BASENAME, EarlyStart
from .early_sockets import EarlySockets
from .launcher import Launcher

_PARENT_POLL_S = 1.0


class SandboxKernelApp(Application):
    """Reads the settings and the connection file, binds the channels, runs the kernel."""

    name = Unicode("sandbox-kernel")
    description = "A Jupyter kernel that runs every cell in a hardened Docker sandbox."
    classes = [Sandbox]
    connection_file = Unicode("", help="The connection file a Jupyter client wrote for this "
                              "kernel (-f); without one, a new file in Jupyter's runtime "
                              "directory.").tag(config=True)
    aliases = {"f": "SandboxKernelApp.connection_file", "log-level": "Application.log_level"}
    early = Instance(EarlyStart, allow_none=True,
                     help="A sandbox started before the kernel's imports (early.py).")
    early_sockets = AnyTrait(None, allow_none=True,
                             help="The channels bound before the imports (early_sockets.py).")
    launcher: Launcher | None = None
    config_sources: ConfigSources | None = None
    connection: Connection | None = None

    def initialize(self, argv: Any = None) -> None:
        self.parse_command_line(argv)
        self.config_sources = ConfigSources(self.cli_config)
        self.load_config_file(BASENAME, path=list(jupyter_config_path()))
        logging.captureWarnings(True)  # library warnings go to the kernel's log, not cells
        checked = check_settings(self.config, sources=self.config_sources,
                                 known_sections=("SandboxKernelApp", "Application", "Sandbox"))
        early = self.early.take(checked) if self.early is not None else None
        self.launcher = early or Launcher(checked.settings, checked)
        self.launcher.start()  # in a thread: errors surface at the first cell
        early_sockets, self.early_sockets = self.early_sockets, None
        self.connection = Connection.open(self.connection_file, early_sockets, self.log)

    def _load_config_files(  # type: ignore[override]
            self, basefilename: str, path: Any = None, log: Any = None,
            raise_config_file_errors: bool = False) -> Iterator[tuple[Any, str]]:
        """traitlets' loop, remembering which file set what (messages name the file)."""
        if self.config_sources is None:
            self.config_sources = ConfigSources(self.cli_config)
        return self.config_sources.load(
            (self.python_config_loader_class, self.json_config_loader_class), basefilename,
            path, log)

    def start(self) -> None:
        assert self.connection is not None and self.launcher is not None
        try:
            asyncio.run(self._serve(self.connection, self.launcher))
        finally:
            self.connection.close()

    async def _serve(self, connection: Connection, launcher: Launcher) -> None:
        from .kernel import SandboxKernel

        kernel = SandboxKernel(connection.wire, *connection.channels(), self.log,
                               connection.ports, launcher)
        poller = asyncio.ensure_future(_watch_parent(kernel.stop, self.log))
        try:
            kernel.start()
            await kernel.serve()
        finally:
            poller.cancel()


async def _watch_parent(stop: Any, log: logging.Logger) -> None:
    """Exit when the process that started the kernel is gone (as ipykernel's poller)."""
    try:
        parent = int(os.environ.get("JPY_PARENT_PID", "0"))
    except ValueError:
        parent = 0
    if parent <= 1:
        return
    while os.getppid() == parent:
        await asyncio.sleep(_PARENT_POLL_S)
    log.warning("the kernel's parent process exited; shutting down")
    stop()


def main(argv: Any = None, early: EarlyStart | None = None,
         sockets: EarlySockets | None = None) -> None:
    app = SandboxKernelApp(early=early, early_sockets=sockets)
    app.initialize(argv)
    app.start()
