"""Health snapshots rendered for frontends without widgets (text/plain and text/html)."""

from __future__ import annotations

from ..sandbox.spec import Health

AMBER, RED = 80.0, 95.0


def level(percent: float) -> str:
    """'ok', 'warn' (>= 80%) or 'high' (>= 95%) of a limit."""
    return "high" if percent >= RED else "warn" if percent >= AMBER else "ok"


def _color(percent: float) -> str:
    return {"ok": "#2e7d32", "warn": "#f0a000", "high": "#d32f2f"}[level(percent)]


def _mb(n: float) -> str:
    return f"{n / 2**20:.0f} MB"


def _uptime(s: float) -> str:
    m, s = divmod(int(s), 60)
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s"


def health_text(h: Health) -> str:
    mem = f"{_mb(h.memory_usage)} / {_mb(h.memory_limit)} ({h.memory_percent:.0f}%)" \
        if h.memory_limit else _mb(h.memory_usage)
    pids = f"{h.pids} / {h.pids_limit}" if h.pids_limit else str(h.pids)
    state = h.status.upper() + (f": {h.reason}" if h.reason else "")
    return (f"sandbox {state}\n  memory     {mem}\n  cpu        {h.cpu_percent:.0f}%\n"
            f"  processes  {pids}\n  uptime     {_uptime(h.uptime_s)}"
            + (f"\n  oom kills  {h.oom_kills}" if h.oom_kills else ""))


def _bar(label: str, percent: float, text: str) -> str:
    p = max(0.0, min(100.0, percent))
    return (f"<div style='display:flex;align-items:center;gap:8px;margin:2px 0'>"
            f"<span style='width:80px'>{label}</span>"
            f"<span style='display:inline-block;width:200px;height:12px;background:#e0e0e0;"
            f"border-radius:3px'><span style='display:block;height:12px;width:{p:.1f}%;"
            f"background:{_color(percent)};border-radius:3px'></span></span>"
            f"<span>{text}</span></div>")


def health_html(h: Health) -> str:
    mem_pct = h.memory_percent
    pid_pct = 100.0 * h.pids / h.pids_limit if h.pids_limit else 0.0
    mem = f"{_mb(h.memory_usage)} / {_mb(h.memory_limit)} ({mem_pct:.0f}%)" \
        if h.memory_limit else _mb(h.memory_usage)
    return ("<div class='sandbox-health' style='font-family:monospace;font-size:12px'>"
            f"<b>sandbox {h.status}</b>"
            + _bar("memory", mem_pct, mem)
            + _bar("cpu", h.cpu_percent, f"{h.cpu_percent:.0f}%")
            + _bar("processes", pid_pct, f"{h.pids} / {h.pids_limit or '-'}")
            + f"<div>uptime {_uptime(h.uptime_s)}</div></div>")


def health_bundle(h: Health) -> dict[str, str]:
    return {"text/plain": health_text(h), "text/html": health_html(h)}
