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
from traitlets import Type, Unicode

from .config import Sandbox
from .kernel import SandboxKernel
from .launcher import Launcher


class SandboxKernelApp(IPKernelApp):
    """Launches a SandboxKernel."""

    name = Unicode("sandbox-kernel")
    description = "A Jupyter kernel that runs every cell in a hardened Docker sandbox."
    kernel_class = Type(SandboxKernel, help="The kernel class to launch.").tag(config=True)
    classes = [*IPKernelApp.classes, SandboxKernel, Sandbox]
    launcher: Launcher | None = None

    def init_config_files(self) -> None:
        """Only Jupyter's config directories; never the working directory or a profile.

        Runs after init_profile_dir (which would add the IPython profile) and before the
        config files are loaded, so this list is the whole search path.
        """
        self.config_file_paths = list(jupyter_config_path())

    def init_connection_file(self) -> None:
        """The configuration is loaded by now: start the sandbox while ipykernel sets up."""
        logging.captureWarnings(True)  # library warnings go to the kernel's log, not cells
        self.launcher = Launcher(Sandbox(parent=self))
        self.launcher.start()  # in a thread: errors surface at the first cell
        super().init_connection_file()


def main(argv: Any = None) -> None:
    SandboxKernelApp.launch_instance(argv=argv)
