"""The per-cell output cap counts data and metadata of every output type, the history
keeps bounded text, a burst of small displays all arrives, and the kernel's memory stays
bounded under every flood. Each flood is made from inside a cell, through jupyter_client
against the real kernel.
"""

from __future__ import annotations

import time
from queue import Empty

import psutil
import pytest

from .conftest import KernelHandle, peak_rss_mib

pytestmark = pytest.mark.docker

MiB = 1 << 20
CAP = 4 * MiB
TRUNCATED = "[sandbox] output truncated after 4 MB: "


def _shown_chars(r: object) -> int:
    total = 0
    for m in r.msgs:  # type: ignore[attr-defined]
        if m.type == "stream":
            total += len(m.content["text"])
        elif m.type in ("display_data", "update_display_data", "execute_result"):
            total += sum(len(str(v)) for v in m.content["data"].values())
            total += len(str(m.content.get("metadata", {})))
    return total


FLOODS = {
    "display-html": ("from IPython.display import display, HTML\n"
                     "for i in range(256):\n    display(HTML('<b>' + 'h' * (1 << 20) + '</b>'))",
                     "display_data", 256),
    "display-json": ("from IPython.display import display, JSON\n"
                     "for i in range(64):\n    display(JSON({'k': ['j' * 1000] * 1000}))",
                     "display_data", 64),
    "update-display": ("from IPython.display import display\n"
                       "h = display('start', display_id=True)\n"
                       "for i in range(200):\n    h.update('u' * (1 << 20))",
                       "update_display_data", 200),
    "execute-result": ("'r' * (7 << 20)", "execute_result", 1),
    "metadata": ("from IPython.display import display\n"
                 "for i in range(2000):\n"
                 "    display({'text/plain': 'm'}, metadata={'text/plain': {'k' * 200: 'v' * "
                 "(140 << 10)}}, raw=True)", "display_data", 2000),
}


@pytest.mark.parametrize("name", list(FLOODS))
def test_every_output_type_counts_against_the_cap(k: KernelHandle, name: str) -> None:
    cell, mtype, produced = FLOODS[name]
    r = k.execute(cell, timeout=300)
    assert r.status == "ok", r
    shown = _shown_chars(r)
    assert shown <= CAP + 64 * 1024, f"{name}: {shown:,} characters reached the frontend"
    notice = r.text("stderr")
    if name == "metadata":
        # 280 MB of metadata: not allow-listed, removed from each output and said so
        assert len(r.of("display_data")) == produced
        assert all(m.content["metadata"] == {} for m in r.of("display_data"))
        assert notice.count("metadata keys outside the allow-list") == 20
        assert "more outputs had content removed" in notice
    else:
        assert TRUNCATED in notice, notice[-500:]
        assert "more outputs were not shown" in notice
        assert len(r.of(mtype)) < produced or mtype == "execute_result"
    assert peak_rss_mib(k.pid) < 400
    assert k.value("'alive'") == "'alive'"


def test_error_text_counts_and_is_bounded(k: KernelHandle) -> None:
    r = k.execute("def deep(n):\n    return deep(n + 1) if n < 900 else 1 / 0\n"
                  "raise ValueError('e' * (3 << 20)) from None", timeout=120)
    assert r.status == "error"
    (err,) = r.errors
    assert len(err["evalue"]) <= 100_000
    assert sum(len(x) for x in err["traceback"]) <= 300 * 1024
    r = k.execute("print('x' * (4 << 20))\nraise RuntimeError('after the cap')", timeout=120)
    assert r.errors and r.errors[0]["ename"] == "RuntimeError"  # errors are always shown


def test_pager_payload_counts_against_the_cap(k: KernelHandle) -> None:
    r = k.execute("from IPython.core import page\nprint('p' * (4 << 20))\n"
                  "page.page('q' * (2 << 20))", timeout=120)
    assert r.status == "ok"
    assert r.reply["payload"] == []
    assert "1 more outputs were not shown" in r.text("stderr")
    r = k.ok("from IPython.core import page\npage.page('<b>pager</b> text')")
    (payload,) = r.reply["payload"]
    assert payload["data"]["text/plain"].startswith("<b>pager</b> text")


def test_history_keeps_bounded_text_and_the_kernel_does_not_grow(k: KernelHandle) -> None:
    kernel = psutil.Process(k.pid)
    k.execute("big = 'z' * (3 << 20)")
    k.execute("big")  # warm up
    before = kernel.memory_info().rss
    for _ in range(20):
        r = k.execute("big", timeout=120)
        assert r.results()
    grown = (kernel.memory_info().rss - before) / MiB
    reply = k.request("history", hist_access_type="tail", n=25, output=True, raw=True)
    outputs = [entry[2][1] for entry in reply["history"]]
    assert outputs and max(len(o) for o in outputs) <= 10_001
    print(f"\nkernel RSS grew {grown:.1f} MiB over 20 cells of a 3 MiB result")
    assert grown < 40


def _drain_displays(k: KernelHandle, code: str, timeout: float) -> tuple[int, str, dict]:
    """Run a cell, reading IOPub as fast as a frontend does; count displays."""
    msg_id = k.kc.execute(code)
    displays, stderr, deadline = 0, "", time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            m = k.kc.get_iopub_msg(timeout=1)
        except Empty:
            continue
        if m["parent_header"].get("msg_id") != msg_id:
            continue
        if m["msg_type"] == "display_data":
            displays += 1
        elif m["msg_type"] == "stream" and m["content"]["name"] == "stderr":
            stderr += m["content"]["text"]
        elif m["msg_type"] == "status" and m["content"]["execution_state"] == "idle":
            reply = k.kc.get_shell_msg(timeout=60)
            return displays, stderr, reply["content"]
    raise AssertionError(f"burst did not finish: {displays:,} displays so far")


def test_a_burst_of_100000_small_displays_all_arrive(k: KernelHandle) -> None:
    """ipykernel delivers them all; a ZMQ XPUB drops past its high-water mark (1,000 per
    subscriber) unless sends wait for room (kernel/pacing.py)."""
    kernel = psutil.Process(k.pid)
    t0 = time.monotonic()
    shown, stderr, reply = _drain_displays(
        k, "from IPython.display import display\nfor i in range(100_000):\n    display(i)",
        timeout=600)
    elapsed = time.monotonic() - t0
    rss = kernel.memory_info().rss / MiB
    print(f"\n100,000 displays: {shown:,} arrived in {elapsed:.1f} s, kernel RSS {rss:.0f} MiB")
    assert reply["status"] == "ok"
    assert shown == 100_000, stderr[-500:]
    assert "not shown" not in stderr and "could not be delivered" not in stderr
    assert rss < 200
