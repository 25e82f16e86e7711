"""Every setting of the sandbox kernel, in one traitlets Configurable.

Set them in `sandbox_kernel_config.py` in a Jupyter config directory (`jupyter --paths`;
never the notebook's working directory, see app.py) as `c.Sandbox.memory = "1g"`, or on
the kernel's command line as
`--Sandbox.memory=1g` (e.g. in a kernelspec's argv). Limits are the defaults every
sandbox starts with; `max_*` are the administrator's ceilings that `%sandbox limits` may
never pass.
"""

from __future__ import annotations

import os

from traitlets import Bool, Dict, Enum, Float, Int, Unicode
from traitlets.config import Configurable

from ..errors import ConfigError, LimitError
from ..sandbox.manager import DEFAULT_IMAGE
from ..sandbox.spec import Limits


class Sandbox(Configurable):
    """Image, limits, ceilings and policies of the sandbox kernel."""

    image = Unicode(DEFAULT_IMAGE, help="Docker image every sandbox runs.").tag(config=True)
    language = Enum(["python", "node"], "python",
                    help="Language of cells without a %%magic (the kernelspec sets it).").tag(
                        config=True)

    memory = Unicode("512m", help="Memory of the sandbox, no swap (e.g. 512m, 2g).").tag(
        config=True)
    cpus = Unicode("1", help="CPU cores (a cgroup quota; e.g. 0.5, 2).").tag(config=True)
    pids = Unicode("20", help="Processes and threads in the sandbox.").tag(config=True)
    timeout = Unicode("300s", help="Wall-clock time per cell (e.g. 120s, 10m).").tag(config=True)
    cpu_time = Unicode("300s", help="CPU time per cell (a per-cell budget).").tag(config=True)
    output = Unicode("4m", help="Output kept per cell; the rest is dropped with a notice.").tag(
        config=True)
    file_size = Unicode("1g", help="Largest file a process may write.").tag(config=True)
    sandbox_size = Unicode("256m", help="Size of /sandbox (tmpfs; counts as memory).").tag(
        config=True)
    tmp_size = Unicode("64m", help="Size of /tmp (tmpfs; counts as memory).").tag(config=True)

    max_memory = Unicode("4g", help="Ceiling for memory that users may set.").tag(config=True)
    max_cpus = Unicode(str(os.cpu_count() or 1), help="Ceiling for cpus.").tag(config=True)
    max_pids = Unicode("512", help="Ceiling for pids.").tag(config=True)
    max_timeout = Unicode("24h", help="Ceiling for the per-cell timeout.").tag(config=True)
    max_cpu_time = Unicode("24h", help="Ceiling for the per-cell CPU budget.").tag(config=True)
    max_output = Unicode("64m", help="Ceiling for output kept per cell.").tag(config=True)

    idle_timeout = Float(
        1800.0, help="Seconds with no cell running after which the sandbox is removed; the "
        "next cell starts a fresh one and says so. 0 disables.").tag(config=True)
    pool_size = Int(
        0, help="Warm sandboxes kept ready by this kernel, claimable by other kernels "
        "too; a new kernel first claims one it finds.").tag(config=True)
    interrupt_grace = Float(
        3.0, help="Seconds a cell may ignore an interrupt before its interpreter is killed "
        "(its state is then lost).").tag(config=True)
    sanitize_output = Bool(
        True, help="Sanitize HTML and SVG from the sandbox with nh3, and allow only "
        "embedded images. Turning this off lets sandbox output run in your browser.").tag(
        config=True)
    allow_javascript = Bool(
        False, help="Forward application/javascript outputs. Unsafe: script from the "
        "sandbox can drive the Jupyter server outside it.").tag(config=True)
    monitor_on_start = Bool(
        False, help="Show the live resource monitor (a widget) with the first cell's output, "
        "as %sandbox health --watch does.").tag(config=True)
    env = Dict(
        {}, help="Environment variables given to every sandbox. Nothing from the host "
        "environment is passed unless named here.").tag(config=True)

    def limits(self) -> Limits:
        """The default limits, checked against the ceilings."""
        return self._parse("", Limits(), self.ceilings())

    def ceilings(self) -> Limits:
        return self._parse("max_", Limits.widest(), None)

    def _parse(self, prefix: str, base: Limits, ceilings: Limits | None) -> Limits:
        values = {name: getattr(self, prefix + name) for name in
                  ("memory", "cpus", "pids", "timeout", "cpu_time", "output")}
        if not prefix:
            values.update(file_size=self.file_size, sandbox_size=self.sandbox_size,
                          tmp_size=self.tmp_size)
        try:
            return base.changed(ceilings, **values)
        except LimitError as exc:
            raise ConfigError(f"invalid sandbox configuration ({prefix or ''}{exc})") from None
