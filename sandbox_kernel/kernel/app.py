"""The kernel application: `python -m sandbox_kernel -f CONNECTION_FILE`.

An IPKernelApp with its own name, so settings live in `sandbox_kernel_config.py` in the
Jupyter config directories (`jupyter --paths`), or on the command line
(`--Sandbox.memory=1g`). Config files are never loaded from the notebook's directory: a
notebook is untrusted, and a config file is Python that runs on the host.
"""

from __future__ import annotations

import logging
from typing import Any

from ipykernel.kernelapp import IPKernelApp
from jupyter_core.paths import jupyter_config_path
from traitlets import List, Type, Unicode, default

from ..errors import SandboxError
from .config import Sandbox
from .kernel import SandboxKernel
from .launcher import Launcher


class SandboxKernelApp(IPKernelApp):
    """Launches a SandboxKernel."""

    name = Unicode("sandbox-kernel")
    description = "A Jupyter kernel that runs every cell in a hardened Docker sandbox."
    kernel_class = Type(SandboxKernel, help="The kernel class to launch.").tag(config=True)
    classes = [*IPKernelApp.classes, SandboxKernel, Sandbox]
    config_file_paths = List(Unicode())
    launcher: Launcher | None = None

    @default("config_file_paths")
    def _jupyter_config_dirs(self) -> list[str]:
        return list(jupyter_config_path())

    def init_profile_dir(self) -> None:
        super().init_profile_dir()
        self.config_file_paths = list(jupyter_config_path())

    def init_config_files(self) -> None:
        """Only Jupyter's config directories; never the working directory or a profile."""
        self.config_file_paths = list(jupyter_config_path())

    def init_connection_file(self) -> None:
        """The configuration is loaded by now: start the sandbox while ipykernel sets up."""
        logging.captureWarnings(True)  # library warnings go to the kernel's log, not cells
        self.launcher = Launcher(Sandbox(parent=self))
        try:
            self.launcher.start()
        except SandboxError as exc:
            self.log.warning("sandbox start deferred to the first cell: %s", exc)
        super().init_connection_file()


def main(argv: Any = None) -> None:
    SandboxKernelApp.launch_instance(argv=argv)
