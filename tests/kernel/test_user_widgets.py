"""ipywidgets from cell code, through the comm bridge, driven as a frontend would (issue 15).

Comms opened, updated both ways (with binary buffers) and closed; comm_info; Output widget
capture; interact; the caps; and what the bridge refuses: modules off the allow-list,
script in HTML state, state the browser would fetch, and the kernel's own monitor.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from queue import Empty
from typing import Any

import pytest

from .conftest import KernelHandle, Msg, Result

pytestmark = pytest.mark.docker

VIEW = "application/vnd.jupyter.widget-view+json"


@pytest.fixture(scope="module")
def k() -> Iterator[KernelHandle]:
    handle = KernelHandle("sandbox")
    try:
        handle.ok("import ipywidgets as w")
        yield handle
    finally:
        handle.close()


def opened(r: Result, model: str | None = None) -> dict[str, dict[str, Any]]:
    """comm_id -> state of the widgets a cell opened (of one model name, if given)."""
    out = {}
    for m in r.of("comm_open"):
        state = m.content["data"]["state"]
        if model is None or state.get("_model_name") == model:
            out[m.content["comm_id"]] = state
    return out


def updates(msgs: list[Msg], comm_id: str) -> list[dict[str, Any]]:
    return [m.content["data"]["state"] for m in msgs if m.type == "comm_msg"
            and m.content["comm_id"] == comm_id and m.content["data"].get("method") == "update"]


def send(k: KernelHandle, msg_type: str, content: dict[str, Any],
         buffers: list[bytes] | None = None, timeout: float = 30) -> tuple[str, list[Msg]]:
    """A frontend's shell message; its msg_id and the IOPub messages it caused."""
    msg = k.kc.session.msg(msg_type, content)
    k.kc.session.send(k.kc.shell_channel.socket, msg, buffers=buffers or [])
    msg_id = msg["header"]["msg_id"]
    return msg_id, k.until_idle(msg_id, timeout)


def update(k: KernelHandle, comm_id: str, state: dict[str, Any],
           buffers: list[bytes] | None = None, paths: list[list[str]] | None = None
           ) -> tuple[str, list[Msg]]:
    return send(k, "comm_msg", {"comm_id": comm_id, "data": {
        "method": "update", "state": state, "buffer_paths": paths or []}}, buffers)


def comm_info(k: KernelHandle) -> dict[str, Any]:
    reply = k.request("comm_info", "jupyter.widget")
    return dict(reply["comms"])


def test_a_slider_opens_displays_and_updates_both_ways(k: KernelHandle) -> None:
    r = k.ok("s = w.IntSlider(value=3, description='n')\n"
             "s.observe(lambda ch: print('now', ch['new']), 'value')\ns")
    sliders = opened(r, "IntSliderModel")
    assert len(sliders) == 1
    sid, state = next(iter(sliders.items()))
    assert state["value"] == 3 and state["description"] == "n"
    assert state["_model_module"] == "@jupyter-widgets/controls"
    # as ipykernel sends it: the widget protocol version in the message's metadata
    assert all(m.raw["metadata"]["version"].startswith("2.") for m in r.of("comm_open"))
    view = r.results()[0][VIEW]
    assert view["model_id"] == sid and view["version_major"] == 2
    # the layout and style it references were opened before it
    refs = {state["layout"], state["style"]}
    assert refs <= {f"IPY_MODEL_{c}" for c in opened(r)}

    r2 = k.ok("s.value = 7")
    assert updates(r2.msgs, sid) == [{"value": 7}]
    assert r2.text("stdout") == "now 7\n"

    _, msgs = update(k, sid, {"value": 42})
    assert "".join(m.content["text"] for m in msgs if m.type == "stream") == "now 42\n"
    assert k.value("s.value") == "42"
    assert sid in comm_info(k)


def test_binary_buffers_go_both_ways(k: KernelHandle) -> None:
    png = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4
    r = k.ok(f"img = w.Image(value={png!r}, format='png')\nimg")
    (m,) = [m for m in r.of("comm_open") if m.content["data"]["state"]["_model_name"] ==
            "ImageModel"]
    assert m.content["data"]["buffer_paths"] == [["value"]]
    assert [bytes(b) for b in m.raw["buffers"]] == [png]
    new = bytes(range(255, -1, -1)) * 3
    update(k, m.content["comm_id"], {}, [new], [["value"]])
    assert k.value("img.value == bytes(range(255, -1, -1)) * 3") == "True"


def test_close_removes_the_comm_everywhere(k: KernelHandle) -> None:
    r = k.ok("t = w.Text('x')\nt")
    (tid,) = opened(r, "TextModel")
    assert tid in comm_info(k)
    r2 = k.ok("t.close()")
    assert [m.content["comm_id"] for m in r2.of("comm_close")] == [tid]
    assert tid not in comm_info(k)
    r3 = k.ok("t2 = w.Text('y')\nt2")
    (t2,) = opened(r3, "TextModel")
    send(k, "comm_close", {"comm_id": t2, "data": {}})
    assert k.value("import comm; t2.model_id in comm.get_comm_manager().comms") == "False"
    assert t2 not in comm_info(k)


def test_output_widget_captures_with_and_capture(k: KernelHandle) -> None:
    r = k.ok("out = w.Output()\ndisplay(out)\nwith out:\n    print('inside')\n"
             "@out.capture()\ndef shout():\n    print('captured')\nshout()\nprint('outside')")
    (oid,) = opened(r, "OutputModel")
    parent = r.msgs[0].raw["parent_header"]["msg_id"]
    seq = [(m.type, m.content.get("text") or m.content.get("data", {}).get("state"))
           for m in r.msgs if m.type in ("stream", "comm_msg")
           and m.content.get("comm_id", oid) == oid]
    assert seq == [("comm_msg", {"msg_id": parent}), ("stream", "inside\n"),
                   ("comm_msg", {"msg_id": ""}), ("comm_msg", {"msg_id": parent}),
                   ("stream", "captured\n"), ("comm_msg", {"msg_id": ""}),
                   ("stream", "outside\n")], seq


def test_interact_runs_the_function_on_each_change(k: KernelHandle) -> None:
    r = k.ok("from ipywidgets import interact\n@interact(x=5)\ndef f(x):\n    print('got', x * 2)")
    (sid,) = opened(r, "IntSliderModel")
    (oid,) = opened(r, "OutputModel")
    assert "got 10\n" in r.text("stdout")
    msg_id, msgs = update(k, sid, {"value": 7})
    assert {"msg_id": msg_id} in updates(msgs, oid)  # the capture names this very message
    assert "got 14\n" in "".join(m.content["text"] for m in msgs if m.type == "stream")


def test_tqdm_notebook_and_auto_use_widgets(k: KernelHandle) -> None:
    r = k.ok("from tqdm.notebook import tqdm\nfor _ in tqdm(range(3)): pass")
    bars = opened(r, "FloatProgressModel")
    assert len(bars) == 1
    assert any(u.get("value") == 3 for u in updates(r.msgs, next(iter(bars))))
    assert k.value("import tqdm.auto, tqdm.notebook\n"
                   "issubclass(tqdm.auto.tqdm, tqdm.notebook.tqdm)") == "True"


def test_jslink_between_sandbox_widgets_is_kept(k: KernelHandle) -> None:
    r = k.ok("a, b = w.IntSlider(), w.IntText()\nl = w.jslink((a, 'value'), (b, 'value'))\n"
             "w.HBox([a, b])")
    (link,) = opened(r, "LinkModel").values()
    assert link["source"][0] == f"IPY_MODEL_{next(iter(opened(r, 'IntSliderModel')))}"
    assert "[sandbox] refused" not in r.text("stderr")


def test_html_state_is_sanitized(k: KernelHandle) -> None:
    r = k.ok("h = w.HTML('<b>bold</b><img src=x onerror=\"alert(1)\"><script>alert(2)</script>')\n"
             "c = w.Checkbox(description='<i>it</i><svg onload=alert(3)>',"
             " description_allow_html=True)\nt = w.Text(description='a < b <b>x</b>')\n"
             "display(h, c, t)\nh.value = '<a href=\"javascript:alert(4)\">x</a><u>u</u>'")
    ((hid, h),) = opened(r, "HTMLModel").items()
    assert "<b>bold</b>" in h["value"]
    assert "onerror" not in h["value"] and "<script" not in h["value"]
    (c,) = opened(r, "CheckboxModel").values()
    assert "<i>it</i>" in c["description"] and "onload" not in c["description"]
    (t,) = opened(r, "TextModel").values()
    assert t["description"] == "a < b <b>x</b>"  # shown as text by the frontend: unchanged
    (later,) = updates(r.msgs, hid)
    assert "<u>u</u>" in later["value"] and "javascript" not in later["value"]


def test_state_the_browser_would_fetch_is_refused(k: KernelHandle) -> None:
    r = k.ok("i = w.Image(value=b'http://127.0.0.1:9/x.png', format='url')\n"
             "v = w.Video(value=b'data', format='mp4')\n"
             "h = w.HTML('x', style={'background': 'url(http://127.0.0.1:9/a)'})\n"
             "h2 = w.HTML('y', style={'background': 'u\\\\72 l(http://127.0.0.1:9/b)'})\n"
             "display(i, v, h, h2)")
    (img,) = [m for m in r.of("comm_open") if m.content["data"]["state"]["_model_name"] ==
              "ImageModel"]
    assert img.content["data"]["state"].get("format") != "url"
    assert img.content["data"]["buffer_paths"] == [] and not img.raw["buffers"]
    (video,) = [m for m in r.of("comm_open") if m.content["data"]["state"]["_model_name"] ==
                "VideoModel"]
    assert video.content["data"]["buffer_paths"] == [["value"]]  # embedded: kept
    styles = opened(r, "HTMLStyleModel").values()
    assert styles and all("background" not in s for s in styles)
    comms = [(m.content, [bytes(b) for b in m.raw["buffers"]])
             for m in r.of("comm_open", "comm_msg")]
    assert "127.0.0.1:9" not in str(comms)
    assert "[sandbox] refused widget fields the browser would fetch" in r.text("stderr")


def test_modules_off_the_allow_list_and_other_targets_are_refused(k: KernelHandle) -> None:
    r = k.ok("from traitlets import Unicode\nclass Evil(w.DOMWidget):\n"
             "    _model_module = Unicode('evil-widgets').tag(sync=True)\n"
             "    _model_name = Unicode('EvilModel').tag(sync=True)\n"
             "e = Evil()\ndisplay(e)\nfrom comm import create_comm\n"
             "c = create_comm(target_name='evil.target', data={'x': 1})")
    assert not opened(r, "EvilModel")
    assert not any(m.content.get("target_name") == "evil.target" for m in r.of("comm_open"))
    err = r.text("stderr")
    assert "module 'evil-widgets', which is not on the allow-list" in err
    assert "a comm for 'evil.target'" in err
    assert not any(VIEW in d for d in r.displays())  # its view names no model shown


def test_allowed_modules_come_from_the_setting(start_kernel: Any) -> None:
    k = start_kernel(extra_arguments=["--Sandbox.widget_modules=['evil-widgets']"])
    r = k.ok("import ipywidgets as w\nfrom traitlets import Unicode\n"
             "class Evil(w.DOMWidget):\n"
             "    _model_module = Unicode('evil-widgets').tag(sync=True)\n"
             "    _model_name = Unicode('EvilModel').tag(sync=True)\nEvil()")
    assert opened(r, "EvilModel")


def test_the_kernel_monitor_cannot_be_reached_or_faked(k: KernelHandle) -> None:
    r = k.ok("%sandbox health --watch")
    monitor = set(opened(r))
    box = next(c for c, s in opened(r).items() if s["_model_name"] == "VBoxModel")
    # The registry's ids, not its reprs: a tqdm bar's widget fails to repr once the bar is
    # collected (an earlier test made one), whenever the collector gets to it.
    r2 = k.ok(f"from comm import create_comm\nfake = create_comm(target_name='jupyter.widget',"
              f" comm_id={box!r}, data={{'state': {{'_model_name': 'VBoxModel', "
              "'_model_module': '@jupyter-widgets/controls'}, 'buffer_paths': []})\n"
              f"b = w.VBox()\nb.comm.send({{'method': 'update', 'state': {{'children': "
              f"['IPY_MODEL_{box}']}}, 'buffer_paths': []}})\n"
              f"list(w.Widget.widgets)  # noqa")
    assert not set(opened(r2)) & monitor
    assert not any(m.content["comm_id"] in monitor for m in r2.of("comm_msg"))
    assert not any(f"IPY_MODEL_{box}" in str(m.content) for m in r2.of("comm_open", "comm_msg"))
    assert "addressed to the kernel's own widgets" in r2.text("stderr")
    info = comm_info(k)
    assert monitor <= set(info)  # and the monitor still answers: it is the kernel's
    _, msgs = send(k, "comm_msg", {"comm_id": box, "data": {"method": "request_state"}})
    assert [m.content["comm_id"] for m in msgs if m.type == "comm_msg"] == [box]


def test_a_flood_is_capped_with_a_notice(start_kernel: Any) -> None:
    k = start_kernel(extra_arguments=["--Sandbox.widget_rate=20"])
    r = k.ok("import ipywidgets as w\ns = w.IntText()\nfor i in range(2000):\n"
             "    s.value = i\nbig = w.Image(value=b'x' * (5 * 2**20))", timeout=120)
    sent = len(r.of("comm_msg"))
    assert 100 <= sent < 1000, sent  # a burst of ten seconds' worth, then the rate
    err = r.text("stderr")
    assert "widget messages from the sandbox were dropped" in err
    assert "a widget message of 5,24" in err
    assert k.ok("print(1)").text("stdout") == "1\n"  # the kernel answers at once after


def test_a_widget_message_then_a_cell_each_keep_their_own_output(k: KernelHandle) -> None:
    """The frontend's comm message waits for its turn (nbclient sends one as a cell
    starts): the cell's output and idle status still name the cell."""
    r = k.ok("import time\nq = w.IntText()\n"
             "q.observe(lambda ch: (time.sleep(0.5), print('seen', ch['new'])), 'value')\nq")
    (qid,) = opened(r, "IntTextModel")
    for value in (5, 6):  # the second arrives while the first is handled
        msg = k.kc.session.msg("comm_msg", {"comm_id": qid, "data": {
            "method": "update", "state": {"value": value}, "buffer_paths": []}})
        k.kc.shell_channel.send(msg)
    after = k.ok("time.sleep(1)\nprint('after', q.value)")
    assert after.text("stdout") == "after 6\n"
    assert "seen" not in after.text()


def test_a_thread_updates_a_widget_between_cells(k: KernelHandle) -> None:
    r = k.ok("import threading, time\nbg = w.IntText()\n"
             "threading.Thread(target=lambda: (time.sleep(1), setattr(bg, 'value', 99))).start()"
             "\nbg")
    (bid,) = opened(r, "IntTextModel")
    deadline = time.monotonic() + 30
    seen: list[dict[str, Any]] = []
    while time.monotonic() < deadline and {"value": 99} not in seen:
        try:
            m = k.kc.get_iopub_msg(timeout=1)
        except Empty:
            continue
        if m["msg_type"] == "comm_msg" and m["content"]["comm_id"] == bid:
            seen.append(m["content"]["data"]["state"])
    assert {"value": 99} in seen


def test_output_widget_state_goes_through_the_policy(k: KernelHandle) -> None:
    r = k.ok("from IPython.display import HTML\nob = w.Output()\nob.append_stdout('plain')\n"
             "ob.append_display_data(HTML('<b>ok</b><img src=x onerror=alert(1)>'))\nob")
    (oid,) = opened(r, "OutputModel")
    states = [s["outputs"] for s in [*opened(r, "OutputModel").values(), *updates(r.msgs, oid)]
              if "outputs" in s]
    last = states[-1]
    assert last[0] == {"output_type": "stream", "name": "stdout", "text": "plain"}
    html = last[1]["data"]["text/html"]
    assert "<b>ok</b>" in html and "onerror" not in html


def test_a_stuck_handler_is_interrupted_by_the_user_and_by_the_timeout(
        start_kernel: Any) -> None:
    k = start_kernel(extra_arguments=["--Sandbox.timeout=8s"])
    r = k.ok("import ipywidgets as w, time\nz = w.IntText()\n"
             "z.observe(lambda ch: time.sleep(1000), 'value')\nz")
    (zid,) = opened(r, "IntTextModel")
    msg = k.kc.session.msg("comm_msg", {"comm_id": zid, "data": {
        "method": "update", "state": {"value": 1}, "buffer_paths": []}})
    k.kc.shell_channel.send(msg)
    time.sleep(1)
    k.km.interrupt_kernel()
    start = time.monotonic()
    assert k.ok("print('alive', z.value)").text("stdout") == "alive 1\n"
    assert time.monotonic() - start < 3.5  # the interrupt, not the timeout, ended it
    _, msgs = update(k, zid, {"value": 2})  # nobody interrupts: the cell timeout does
    assert any(m.type == "error" and m.content["ename"] == "KeyboardInterrupt" for m in msgs)
    assert k.ok("print('alive', z.value)").text("stdout") == "alive 2\n"


MPL_WIDGET = ("%matplotlib widget\nimport matplotlib.pyplot as plt\nfig, ax = plt.subplots()\n"
              "ax.plot([1, 3, 2])\nplt.show()")


def test_matplotlib_widget_needs_its_module_on_the_allow_list(start_kernel: Any) -> None:
    k = start_kernel(extra_arguments=["--Sandbox.widget_modules=['jupyter-matplotlib']"])
    r = k.ok(MPL_WIDGET)
    (canvas,) = opened(r, "MPLCanvasModel")
    assert opened(r, "ToolbarModel")
    frames = [u.get("_data_url", "") for u in updates(r.msgs, canvas)]
    assert any(f.startswith("data:image/png;base64,") for f in frames)
    assert "[sandbox] refused" not in r.text("stderr")
    plain = start_kernel()
    r2 = plain.ok(MPL_WIDGET)
    assert not opened(r2, "MPLCanvasModel")
    assert "module 'jupyter-matplotlib', which is not on the allow-list" in r2.text("stderr")
    assert any("image/png" in d for d in r2.displays())  # its static fallback is shown


def test_no_subshells_offered_so_widget_messages_come_on_the_shell(k: KernelHandle) -> None:
    """JupyterLab sends widget messages on a subshell only to a kernel that offers them:
    this one does not, and on the shell their handlers reach the sandbox, with their output
    before their idle status."""
    k.kc.kernel_info()
    info = k.kc.get_shell_msg(timeout=30)["content"]
    assert "kernel subshells" not in info.get("supported_features", [])
    r = k.ok("sub = w.IntText()\nsub.observe(lambda ch: print('on the shell', ch['new']), "
             "'value')\nsub")
    (sid,) = opened(r, "IntTextModel")
    for value in (1, 2):
        msg = k.kc.session.msg("comm_msg", {"comm_id": sid, "data": {
            "method": "update", "state": {"value": value}, "buffer_paths": []}})
        k.kc.shell_channel.send(msg)
        seen = [m.content["text"] for m in k.until_idle(msg["header"]["msg_id"])
                if m.type == "stream"]
        assert seen == [f"on the shell {value}\n"]
    assert k.value("sub.value") == "2"
