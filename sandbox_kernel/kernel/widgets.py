"""Comms for the wrapper kernel, and the live resource monitor built on ipywidgets.

The widgets live in the kernel process (host side) and only display numbers the agent
reads from the container's cgroup; no sandbox code runs here. The monitor samples about
once a second while any of its views is open, and stops when they close or the kernel
shuts down. Each view also carries a text/plain and text/html snapshot for frontends that
cannot render widgets (nbclient output, jupyter console).
"""

from __future__ import annotations

import asyncio
import contextlib
import html
from typing import TYPE_CHECKING, Any

from ..errors import SandboxError
from ..sandbox.spec import Health
from .health import AMBER, RED, health_bundle
from .host_comms import install_comm_factory
from .idle import Periodic

if TYPE_CHECKING:
    from .kernel import SandboxKernel

COMM_MSG_TYPES = ("comm_open", "comm_msg", "comm_close")
SAMPLE_S = 1.0


def install_comms(kernel: SandboxKernel) -> Any:
    """Give the kernel a comm manager and route comm messages to it (ipywidgets needs this)."""
    manager = install_comm_factory(kernel)
    for msg_type in COMM_MSG_TYPES:
        kernel.shell_handlers[msg_type] = getattr(manager, msg_type)
    return manager


def _style(percent: float) -> str:
    return "danger" if percent >= RED else "warning" if percent >= AMBER else "success"


class MonitorView:
    """One displayed monitor: memory, CPU and process bars with figures, and uptime."""

    def __init__(self) -> None:
        import ipywidgets as w  # only when a monitor is shown: it costs the kernel's start

        layout = w.Layout(width="220px")
        self.status = w.HTML("<b>sandbox</b>")
        self.memory = w.FloatProgress(min=0, max=100, description="memory", layout=layout)
        self.memory_text = w.Label()
        self.cpu = w.FloatProgress(min=0, max=100, description="cpu", layout=layout)
        self.cpu_text = w.Label()
        self.pids = w.FloatProgress(min=0, max=100, description="processes", layout=layout)
        self.pids_text = w.Label()
        self.uptime = w.Label()
        self.box = w.VBox([
            self.status,
            w.HBox([self.memory, self.memory_text]),
            w.HBox([self.cpu, self.cpu_text]),
            w.HBox([self.pids, self.pids_text]),
            self.uptime,
        ])
        self.box.add_class("sandbox-monitor")

    @property
    def open(self) -> bool:
        return getattr(self.box, "comm", None) is not None

    def update(self, h: Health, cpus: float) -> None:
        self.status.value = f"<b>sandbox {h.status}</b>" + (f": {h.reason}" if h.reason else "")
        self.memory.value = min(100.0, h.memory_percent)
        self.memory.bar_style = _style(h.memory_percent)
        limit = f" / {h.memory_limit / 2**20:.0f} MB" if h.memory_limit else ""
        self.memory_text.value = (f"{h.memory_usage / 2**20:.0f} MB{limit} "
                                  f"({h.memory_percent:.0f}%)")
        cpu_pct = h.cpu_percent / cpus if cpus else h.cpu_percent
        self.cpu.value = min(100.0, cpu_pct)
        self.cpu.bar_style = _style(cpu_pct)
        self.cpu_text.value = f"{h.cpu_percent:.0f}% of {cpus:g} CPU"
        pid_pct = 100.0 * h.pids / h.pids_limit if h.pids_limit else 0.0
        self.pids.value = min(100.0, pid_pct)
        self.pids.bar_style = _style(pid_pct)
        self.pids_text.value = f"{h.pids} / {h.pids_limit or '-'}"
        m, s = divmod(int(h.uptime_s), 60)
        self.uptime.value = f"uptime {m // 60}h{m % 60:02d}m{s:02d}s"

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.box.close_all() if hasattr(self.box, "close_all") else self.box.close()


class Monitor:
    """The kernel's live resource views, and the 1 Hz sampler that feeds them."""

    def __init__(self, kernel: SandboxKernel) -> None:
        self.kernel = kernel
        self.views: list[MonitorView] = []
        self.timer: Periodic | None = None
        self._sampler: asyncio.Future[None] | None = None

    def show(self, health: Health) -> None:
        """Display a new live view (with a static snapshot for widget-less frontends)."""
        view = MonitorView()
        session = self.kernel.current_session()
        view.update(health, session.limits.cpus if session else 1.0)
        data = dict(view.box._repr_mimebundle_())
        data.update(health_bundle(health))
        self.kernel.publish("display_data", {"data": data, "metadata": {}, "transient": {}})
        self.views.append(view)
        if self.timer is None:
            self.timer = Periodic(self.tick, SAMPLE_S)
            self.timer.start()

    def tick(self) -> None:
        self.views = [v for v in self.views if v.open]
        if not self.views:
            self.stop()
            return
        if self._sampler is None or self._sampler.done():
            self._sampler = asyncio.ensure_future(self._sample())

    async def _sample(self) -> None:
        try:
            session = self.kernel.current_session()
            if session is None:
                for v in self.views:
                    v.status.value = "<b>sandbox not running</b> (the next cell starts one)"
                return
            health = await session.health(95.0, False)
            for v in self.views:
                v.update(health, session.limits.cpus)
        except SandboxError as exc:
            for v in self.views:
                v.status.value = f"<b>sandbox unavailable</b>: {html.escape(str(exc))}"

    def stop(self) -> None:
        if self.timer is not None:
            self.timer.stop()
            self.timer = None

    def close(self) -> None:
        self.stop()
        for v in self.views:
            v.close()
        self.views = []
