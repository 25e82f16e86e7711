"""The kernel application: `python -m sandbox_kernel -f CONNECTION_FILE`.

An IPKernelApp with its own name, so settings live in `sandbox_kernel_config.py` in the
Jupyter config directories (`jupyter --paths`), or on the command line
(`--Sandbox.memory=1g`). Config files are never loaded from the notebook's directory: a
notebook is untrusted, and a config file is Python that runs on the host.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from ipykernel.kernelapp import IPKernelApp
from jupyter_core.paths import jupyter_config_path
from traitlets import Instance, Type, Unicode

from .config import Sandbox
from .config_check import check_settings
from .config_sources import ConfigSources
from .early import EarlyStart
from .kernel import SandboxKernel
from .launcher import Launcher


class SandboxKernelApp(IPKernelApp):
    """Launches a SandboxKernel."""

    name = Unicode("sandbox-kernel")
    description = "A Jupyter kernel that runs every cell in a hardened Docker sandbox."
    kernel_class = Type(SandboxKernel, help="The kernel class to launch.").tag(config=True)
    classes = [*IPKernelApp.classes, SandboxKernel, Sandbox]
    early = Instance(EarlyStart, allow_none=True,
                     help="A sandbox started before ipykernel was imported (early.py).")
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


def main(argv: Any = None, early: EarlyStart | None = None) -> None:
    SandboxKernelApp.launch_instance(argv=argv, early=early)
