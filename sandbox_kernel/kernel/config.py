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
from typing import TYPE_CHECKING

from traitlets import Bool, Dict, Enum, Float, Int, List, Unicode, default
from traitlets.config import Configurable

from ..errors import ConfigError, LimitError
from ..sandbox.image import DEFAULT_IMAGE, default_image
from ..sandbox.spec import Limits
from ..sandbox.units import parse_size

if TYPE_CHECKING:  # imported when first used: the kernel starts its sandbox before them
    from ..sandbox.install_policy import InstallPolicy
    from .policy import OutputPolicy


class Sandbox(Configurable):
    """Image, limits, ceilings and policies of the sandbox kernel."""

    image = Unicode(help="Docker image every sandbox runs (default: $SANDBOX_IMAGE, else "
                    f"{DEFAULT_IMAGE}).").tag(config=True)
    runtime = Unicode(
        help="The engine's OCI runtime for every sandbox, e.g. runsc for gVisor; it must be "
        "registered with the engine ('sandbox-kernel doctor' checks). Empty: the engine's "
        "default runtime. Default: $SANDBOX_RUNTIME.").tag(config=True)
    allow_unenforced_limits = Bool(
        False, help="Run sandboxes on an engine where memory, CPU and process limits cannot "
        "hold (rootless Podman on cgroup v1), which is otherwise refused. Unsafe: the limits "
        "you set are then not enforced.").tag(config=True)
    direct_link = Bool(
        True, help="Move the agent's frames off the engine's attach relay onto a unix socket "
        "the host listens on, in a directory mounted read-only into the sandbox (faster "
        "cells and transfers; docs/architecture.md). Where the sandbox cannot connect "
        "(gVisor, a remote engine), frames stay on the attach either way.").tag(config=True)
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
    packages_size = Unicode("1g", help="Size of the tmpfs that packages installed live "
                            "(%pip install, npm install) go to; counts as memory as it "
                            "fills.").tag(config=True)

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
        True, help="Apply the output policy (README, Security model): only known MIME "
        "types, each cleaned; nothing the browser would fetch without a click. Turning "
        "this off lets sandbox output run in your browser and send data out.").tag(
        config=True)
    allow_javascript = Bool(
        False, help="Forward application/javascript outputs. Unsafe: script from the "
        "sandbox can drive the Jupyter server outside it.").tag(config=True)
    allow_remote_images = Bool(
        False, help="Keep http(s) image sources in HTML, Markdown and SVG outputs. The "
        "browser then fetches them without a click: a sandbox can send data out.").tag(
        config=True)
    allow_page_styles = Bool(
        False, help="Keep CSS rules that apply outside the output (global selectors, "
        "JupyterLab's own class names) and position: fixed, sticky or absolute. An output "
        "can then restyle or cover the page.").tag(config=True)
    allow_tex_macros = Bool(
        False, help="Keep MathJax macros that link, load or style (\\href, \\style, "
        "\\class, \\require, \\def...) in LaTeX, HTML and Markdown outputs.").tag(
        config=True)
    allow_viz_fetch = Bool(
        False, help="Pass Vega, Vega-Lite, Plotly and Mermaid specs unchecked, even those "
        "that load data, images or map tiles from a URL.").tag(config=True)
    extra_mime_types = List(
        Unicode(), [], help="MIME types passed to the browser as they come (canonicalised "
        "only, not cleaned), besides the policy's allow-list.").tag(config=True)
    output_metadata_limit = Int(
        4096, help="Largest metadata of one output, in characters of JSON; larger "
        "metadata is removed with a notice.").tag(config=True)
    monitor_on_start = Bool(
        False, help="Show the live resource monitor (a widget) with the first cell's output, "
        "as %sandbox health --watch does.").tag(config=True)
    widget_modules = List(
        Unicode(), [], help="Widget JavaScript modules a sandbox's widgets may use besides "
        "the standard @jupyter-widgets ones (e.g. 'jupyter-matplotlib' for ipympl); the "
        "module must be installed in the frontend too.").tag(config=True)
    widget_rate = Float(
        200.0, help="Widget messages per second a sandbox may send (bursts of ten seconds' "
        "worth); more are dropped with a notice, so the kernel's own stay live.").tag(
        config=True)
    env = Dict(
        {}, help="Environment variables given to every sandbox. Nothing from the host "
        "environment is passed unless named here.").tag(config=True)

    pip_index_url = Unicode(
        help="Package index the host resolves and fetches %pip install from (a PEP 503 "
        "simple index URL; default: $SANDBOX_PIP_INDEX_URL, as for image builds). Empty: "
        "the index the host's pip uses (its pip.conf and PIP_INDEX_URL), else PyPI.").tag(
            config=True)
    pip_extra_index_urls = List(
        Unicode(), [], help="More indexes for %pip install. Empty with pip_index_url empty: "
        "the host pip's extra-index-url.").tag(config=True)
    npm_registry = Unicode(
        help="npm registry the host fetches npm install from (default: "
        "$SANDBOX_NPM_REGISTRY). Empty: the host npm's registry setting, else "
        "https://registry.npmjs.org/.").tag(config=True)
    pip_allow = List(
        Unicode(), ["*"], help="Python packages %pip install may install (names or fnmatch "
        "patterns, e.g. 'scikit-*'); checked for every package of a resolution, dependencies "
        "too. [] allows none.").tag(config=True)
    pip_deny = List(
        Unicode(), [], help="Python packages refused even when allowed, each 'PATTERN' or "
        "'PATTERN: reason' (the reason is shown to the user).").tag(config=True)
    npm_allow = List(
        Unicode(), ["*"], help="npm packages npm install may install (names or patterns, e.g. "
        "'@types/*'); dependencies too. [] allows none.").tag(config=True)
    npm_deny = List(
        Unicode(), [], help="npm packages refused even when allowed: 'PATTERN' or "
        "'PATTERN: reason'.").tag(config=True)
    install_max_size = Unicode(
        "512m", help="Bytes of package files (wheels, tarballs) installed live into one "
        "sandbox, all installs together.").tag(config=True)

    def output_policy(self) -> OutputPolicy:
        """The frozen output policy these settings describe."""
        from .policy import OutputPolicy

        return OutputPolicy(
            sanitize=self.sanitize_output, allow_javascript=self.allow_javascript,
            allow_remote_images=self.allow_remote_images,
            allow_page_styles=self.allow_page_styles, allow_tex_macros=self.allow_tex_macros,
            allow_viz_fetch=self.allow_viz_fetch,
            extra_mime_types=frozenset(self.extra_mime_types),
            metadata_limit=max(0, self.output_metadata_limit))

    def install_policy(self) -> InstallPolicy:
        """The frozen rules of live installs these settings describe."""
        from ..sandbox.install_policy import InstallPolicy, Rule, ToolPolicy

        try:
            cap = parse_size(self.install_max_size, "install_max_size", 1, 1 << 40)
        except LimitError as exc:
            raise ConfigError(f"invalid sandbox configuration ({exc})") from None
        return InstallPolicy(
            pip_index_url=self.pip_index_url, npm_registry=self.npm_registry,
            pip_extra_index_urls=tuple(self.pip_extra_index_urls),
            pip=ToolPolicy("pip", tuple(self.pip_allow), tuple(map(Rule.parse, self.pip_deny))),
            npm=ToolPolicy("npm", tuple(self.npm_allow), tuple(map(Rule.parse, self.npm_deny))),
            max_total=cap)

    @default("image")
    def _image_default(self) -> str:
        return default_image()

    @default("pip_index_url")
    def _pip_index_default(self) -> str:
        return os.environ.get("SANDBOX_PIP_INDEX_URL", "")

    @default("npm_registry")
    def _npm_registry_default(self) -> str:
        return os.environ.get("SANDBOX_NPM_REGISTRY", "")

    @default("runtime")
    def _runtime_default(self) -> str:
        return os.environ.get("SANDBOX_RUNTIME", "")

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
                          tmp_size=self.tmp_size, packages_size=self.packages_size)
        try:
            return base.changed(ceilings, **values)
        except LimitError as exc:
            raise ConfigError(f"invalid sandbox configuration ({prefix or ''}{exc})") from None
