"""The fidelity harness: each corpus notebook runs under a local ipykernel and under the
sandbox kernel in one run, and their outputs are compared cell by cell after normalising
what varies between runs (tests/fidelity/normalize.py).

Every cell must come out identical except those in KNOWN, each with its reason (the
README lists them); a KNOWN cell that has become identical fails too, so the list stays
true. The counts are printed (`pytest -s`) and written to the test's report.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient

from . import normalize
from .corpus import NOTEBOOKS, Cell

pytestmark = pytest.mark.docker

#: (notebook, cell index) -> why the sandbox's output differs from a local ipykernel's.
_POLICY_CSS = ("output policy: HTML is re-serialised after sanitising, CSS by its tokenizer "
               "(same rules, other spacing)")
KNOWN: dict[tuple[str, int], str] = {
    ("data", 0): _POLICY_CSS,
    ("data", 1): _POLICY_CSS,
    ("magics", 12): "the sandbox's working directory is /sandbox, not the notebook's folder",
    ("rich_display", 3): "output policy: markdown is rendered to sanitised HTML on the host",
    ("rich_display", 9): "output policy: HTML is re-serialised after sanitising (<tbody>)",
    ("rich_display", 10): "stdout and stderr keep the order they were written in; ipykernel "
                          "buffers each stream apart and sends stdout first",
}


def _notebook(cells: list[Cell], sandbox: bool) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    for cell in cells:
        source = cell if isinstance(cell, str) else cell[0 if sandbox else 1]
        nb.cells.append(nbformat.v4.new_code_cell(source))
    return nb


def _run(cells: list[Cell], kernel: str, cwd: Path) -> list[list[dict[str, Any]]]:
    nb = _notebook(cells, sandbox=kernel != "python3")
    NotebookClient(nb, kernel_name=kernel, timeout=120, allow_errors=True,
                   resources={"metadata": {"path": str(cwd)}}).execute()
    return [normalize.outputs(c.outputs) for c in nb.cells]


@pytest.mark.parametrize("name", sorted(NOTEBOOKS))
def test_cells_match_a_local_ipykernel(name: str, tmp_path: Path,
                                       record_property: Any) -> None:
    cells = NOTEBOOKS[name]
    (tmp_path / "local").mkdir()
    (tmp_path / "sandbox").mkdir()
    local = _run(cells, "python3", tmp_path / "local")
    sandbox = _run(cells, "sandbox", tmp_path / "sandbox")
    differ = [i for i, (a, b) in enumerate(zip(local, sandbox, strict=True)) if a != b]
    known = sorted(i for (nb, i) in KNOWN if nb == name)
    same = len(cells) - len(differ)
    print(f"\n{name}: {same} of {len(cells)} cells identical; known differences {known}")
    record_property("identical", f"{same}/{len(cells)}")
    report = [{"cell": i, "source": cells[i], "ipykernel": local[i], "sandbox": sandbox[i]}
              for i in differ if i not in known]
    assert not report, "cells differ from a local ipykernel:\n" + json.dumps(
        report, indent=1, ensure_ascii=False)
    assert differ == known, f"KNOWN lists cells that now match: {set(known) - set(differ)}"
