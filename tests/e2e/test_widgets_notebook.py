"""notebooks/widgets.ipynb through nbclient: every cell runs, the widgets' state is saved in
the notebook (as nbclient does for ipykernel), the Output widget holds what it captured,
and the refused and sanitized parts say so. (test_notebooks.py runs it too, as it runs
every notebook; this checks what is particular to widgets.)"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import nbformat
import pytest
from e2e.test_notebooks import check_executed
from nbclient import NotebookClient

pytestmark = pytest.mark.docker

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "widgets.ipynb"
STATE = "application/vnd.jupyter.widget-state+json"
VIEW = "application/vnd.jupyter.widget-view+json"


def _text(cell: Any) -> str:
    return "".join(o.get("text", "") for o in cell.outputs)


def test_the_widgets_notebook_runs_and_keeps_its_widget_state(tmp_path: Path) -> None:
    shutil.copy(NOTEBOOK, tmp_path / NOTEBOOK.name)
    nb = nbformat.read(tmp_path / NOTEBOOK.name, as_version=4)
    NotebookClient(nb, kernel_name="sandbox", timeout=240, startup_timeout=120,
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    check_executed(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    views = [o["data"][VIEW]["model_id"] for c in code for o in c.outputs
             if VIEW in o.get("data", {})]
    assert len(views) >= 7  # every widget cell shows its widget
    state = nb.metadata["widgets"][STATE]["state"]
    assert set(views) <= set(state)
    names = {s["model_name"] for s in state.values()}
    assert {"IntSliderModel", "OutputModel", "FloatProgressModel", "LinkModel",
            "ImageModel", "HTMLModel"} <= names
    captured = [o.get("text", "") for s in state.values() if s["model_name"] == "OutputModel"
                for o in s["state"].get("outputs", [])]
    assert "captured by the Output widget\ncaptured again, from a function\n" in captured
    assert any("SANDBOX" in t for t in captured)  # interact's first call
    assert not any("captured" in _text(c) for c in code)  # not in the cells' own outputs
    html = next(s["state"]["value"] for s in state.values() if s["model_name"] == "HTMLModel"
                and "bold" in s["state"].get("value", ""))
    assert "<b>bold</b>" in html and "onerror" not in html
    assert "[sandbox] refused widget fields the browser would fetch" in _text(code[-1])
    assert not any(s["state"].get("format") == "url" for s in state.values())
