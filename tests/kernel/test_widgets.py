"""The live resource monitor, usage_request and per-cell accounting (issue: widgets).

The browser side (the widget rendering and rising in JupyterLab) is tests/e2e/
test_jupyterlab.py; here the same through jupyter_client and nbclient.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from queue import Empty

import nbformat
import pytest
from nbclient import NotebookClient

from sandbox_kernel.kernel.accounting import record

from .conftest import KernelHandle

pytestmark = pytest.mark.docker

MiB = 2**20
MEMORY = re.compile(r"(\d+) MB / (\d+) MB")


def _rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def test_usage_request_reports_the_sandbox_not_the_kernel_process(k: KernelHandle) -> None:
    k.ok("held = b'\\x01' * (200 * 2**20)")
    usage = k.usage()
    assert usage["hostname"] == "sandbox"
    assert usage["host_virtual_memory"]["total"] == 512 * MiB
    assert usage["kernel_memory"] > 200 * MiB
    assert _rss(k.pid) < 200 * MiB  # so the figure really is the sandbox's
    assert usage["sandbox"]["pids_limit"] == 20
    assert usage["cpu_count"] == 1
    k.ok("del held")
    assert k.usage()["kernel_memory"] < 150 * MiB


def test_health_watch_is_a_widget_with_a_text_and_html_snapshot(k: KernelHandle) -> None:
    r = k.ok("%sandbox health --watch")
    data = r.displays()[-1]
    view = data["application/vnd.jupyter.widget-view+json"]
    assert view["model_id"]
    assert MEMORY.search(data["text/plain"]), data["text/plain"]
    assert "processes" in data["text/plain"] and "uptime" in data["text/plain"]
    assert "<div" in data["text/html"] and "memory" in data["text/html"]
    models = {m.content["comm_id"]: m.content["data"]["state"] for m in r.of("comm_open")}
    assert view["model_id"] in models
    assert models[view["model_id"]]["_model_name"] == "VBoxModel"


def test_monitor_updates_while_a_cell_runs_and_turns_amber(k: KernelHandle) -> None:
    k.ok("%sandbox health --watch")
    code = ("import time\nblocks = []\nfor _ in range(10):\n"
            "    blocks.append(b'\\x01' * (40 * 2**20))\n    time.sleep(0.4)\n"
            "time.sleep(1.2)\ndel blocks")
    msg_id = k.kc.execute(code)
    figures: list[int] = []
    styles: set[str] = set()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            m = k.kc.get_iopub_msg(timeout=1)
        except Empty:
            continue
        if m["msg_type"] == "comm_msg":
            state = m["content"]["data"].get("state", {})
            found = MEMORY.search(str(state.get("value", "")))
            if found:
                figures.append(int(found.group(1)))
            if "bar_style" in state:
                styles.add(state["bar_style"])
        if (m["parent_header"].get("msg_id") == msg_id and m["msg_type"] == "status"
                and m["content"]["execution_state"] == "idle"):
            break
    k.kc.get_shell_msg(timeout=10)
    assert len(figures) >= 3, figures
    assert max(figures) - min(figures) >= 200, figures  # 400 MB went in while it ran
    assert "warning" in styles, styles  # amber past 80% of the 512 MB limit


def test_execute_reply_metadata_accounts_for_the_cell(k: KernelHandle) -> None:
    r = k.ok("import time\nx = b'\\x01' * (100 * 2**20)\nt = time.process_time()\n"
             "while time.process_time() - t < 0.3: pass\ndel x")
    md = r.metadata["sandbox"]
    assert md["verdict"] == "ok"
    assert md["peak_memory"] > 100 * MiB
    assert md["cpu_seconds"] >= 0.25
    assert md["wall_seconds"] >= 0.3
    err = k.execute("1/0")
    assert err.metadata["sandbox"]["verdict"] == "error"
    host = k.ok("%sandbox status")
    assert host.metadata["sandbox"]["verdict"] == "ok"


def test_one_warning_before_the_memory_limit_kills_a_cell() -> None:
    k = KernelHandle("sandbox", extra_arguments=["--Sandbox.memory=256m"])
    try:
        r = k.execute("import time\nhog = []\nwhile True:\n"
                      "    hog.append(b'\\x01' * (8 * 2**20))\n    time.sleep(0.03)", timeout=120)
        warnings = [line for line in r.text("stderr").splitlines()
                    if "[sandbox] warning: this cell is using" in line]
        assert len(warnings) == 1, r.text("stderr")
        assert "of the 256 MB memory limit" in warnings[0]
        assert r.metadata["sandbox"]["verdict"] == "oom"
        assert [e["ename"] for e in r.errors] == ["MemoryError"]
        warned_at = next(m.t for m in r.streams("stderr") if "warning" in m.content["text"])
        failed_at = r.of("error")[0].t
        assert warned_at < failed_at
    finally:
        k.close()


def test_nbclient_keeps_the_snapshot_and_the_accounting(tmp_path: Path) -> None:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "sandbox", "display_name": "Python 3 (sandbox)",
                                 "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell("%sandbox health --watch"),
                nbformat.v4.new_code_cell("x = sum(range(10**6))")]
    NotebookClient(nb, kernel_name="sandbox", timeout=120, on_cell_executed=record,
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    data = nb.cells[0].outputs[0]["data"]
    assert MEMORY.search(data["text/plain"]) and "<div" in data["text/html"]
    assert "application/vnd.jupyter.widget-view+json" in data
    nbformat.write(nb, tmp_path / "out.ipynb")
    reread = nbformat.read(tmp_path / "out.ipynb", as_version=4)
    assert MEMORY.search(reread.cells[0].outputs[0]["data"]["text/plain"])
    figures = reread.cells[1].metadata["sandbox"]
    assert figures["verdict"] == "ok" and figures["peak_memory"] > 0
    assert figures["cpu_seconds"] is not None and figures["wall_seconds"] > 0
