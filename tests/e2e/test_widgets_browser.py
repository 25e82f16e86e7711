"""User widgets in a real browser (issue 15): JupyterLab in headless Chromium runs a notebook
whose widgets live in the sandbox. A slider drives `interact` and its output updates; an
Output widget shows a captured print; a tqdm.notebook bar renders; a hostile widgets.HTML
value runs no script, while its harmless markup still renders.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest
from e2e.lab import chromium, jupyterlab, open_and_run_all

pytestmark = [pytest.mark.docker, pytest.mark.slow]

PWN = "window.top.__pwned=1;document.body.setAttribute('data-pwned','1');alert(1)"
HOSTILE = f'<b class="safe-html">safe</b><img src=x onerror="{PWN}"><script>{PWN}</script>'
LATER = f'<svg onload="{PWN}"></svg><i>later</i>'
CELLS = [
    "import ipywidgets as w\nfrom ipywidgets import interact\n"
    "@interact(x=w.IntSlider(value=2, min=0, max=10, description='xval'))\n"
    "def f(x):\n    print(f'square={x * x}')",
    "out = w.Output()\ndisplay(out)\nwith out:\n    print('captured-in-output')",
    "from tqdm.notebook import tqdm\nfor _ in tqdm(range(5), desc='bar-desc'):\n    pass",
    f"h = w.HTML({HOSTILE!r})\ndisplay(h)\n"
    f"h2 = w.HTML('later')\ndisplay(h2)\nh2.value = {LATER!r}",
    "print('ALL-' + 'DONE')",
]
MPL_CELLS = ["%matplotlib widget\nimport matplotlib.pyplot as plt\nfig, ax = plt.subplots()\n"
             "ax.plot([1, 3, 2])\nplt.show()", "print('ALL-' + 'DONE')"]


@pytest.fixture(params=[CELLS, MPL_CELLS], ids=["widgets", "ipympl"])
def lab(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    root, state = tmp_path / "root", tmp_path / "state"
    root.mkdir()
    (state / "home" / ".jupyter").mkdir(parents=True)
    (state / "home" / ".jupyter" / "sandbox_kernel_config.py").write_text(
        "c.Sandbox.widget_modules = ['jupyter-matplotlib']\n")  # for %matplotlib widget
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "sandbox", "display_name": "Python (sandbox)",
                                 "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(c) for c in request.param]
    nbformat.write(nb, str(root / "widgets.ipynb"))
    tag = "#ipympl" if request.param is MPL_CELLS else ""
    with jupyterlab(root, state) as (base, token):
        yield f"{base}/lab/tree/widgets.ipynb?token={token}{tag}"


def _text_in(page: Any, selector: str, text: str, timeout: int = 60_000) -> None:
    page.wait_for_function(
        "([sel, text]) => [...document.querySelectorAll(sel)]"
        ".some(e => e.textContent.includes(text))", arg=[selector, text], timeout=timeout)


def _run(lab: str, tmp_path: Path, checks: Any) -> list[Any]:
    """Run the notebook, wait for its last cell, then `checks(page)`; the dialogs seen
    and what the page's marker says."""
    dialogs: list[str] = []
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1280, "height": 1400})
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        open_and_run_all(page, lab)
        try:
            _text_in(page, ".jp-OutputArea-output", "ALL-DONE", 240_000)
            checks(page)
            page.wait_for_timeout(2000)
            marker = page.evaluate("() => [window.__pwned, document.body.getAttribute("
                                   "'data-pwned')]")
        finally:
            page.screenshot(path=str(tmp_path / "widgets.png"), full_page=True)
    return [dialogs, marker]


def _widgets(page: Any) -> None:
    # interact: the slider and its first output
    _text_in(page, ".widget-output", "square=4")
    handle = page.locator(".widget-slider .noUi-handle").first
    handle.focus()
    page.keyboard.press("ArrowRight")
    _text_in(page, ".widget-output", "square=9")
    assert "square=4" not in page.locator(".widget-output").first.inner_text()
    # the Output widget holds the captured print (not the cell's own output area)
    _text_in(page, ".widget-output", "captured-in-output")
    # tqdm.notebook: a progress bar widget, full
    _text_in(page, ".widget-hbox", "bar-desc")
    page.locator(".widget-hprogress .progress-bar").first.wait_for(timeout=30_000)
    # the hostile HTML's harmless part renders, its script does not run
    page.locator(".widget-html .safe-html").first.wait_for(timeout=30_000)
    _text_in(page, ".widget-html", "later")


def _ipympl(page: Any) -> None:
    """%matplotlib widget (ipympl, allowed by the setting): its canvas draws."""
    page.locator(".jupyter-matplotlib canvas").first.wait_for(timeout=60_000)
    _text_in(page, ".jupyter-matplotlib", "Figure 1")


def test_widgets_from_the_sandbox_work_in_jupyterlab(lab: str, tmp_path: Path) -> None:
    checks = _ipympl if lab.endswith("#ipympl") else _widgets
    assert _run(lab.removesuffix("#ipympl"), tmp_path, checks) == [[], [None, None]]

