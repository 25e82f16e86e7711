"""Every notebook in notebooks/ executed by nbclient with the sandbox kernels, plus the demo
through `jupyter nbconvert --execute` and `papermill -k sandbox`.

Notebooks run from a temporary copy of notebooks/ (their files beside them), so nothing is
written into the repository. After each test, no sandbox container whose owner process is
gone may remain.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient

pytestmark = pytest.mark.docker

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "notebooks"
DEMO = NOTEBOOKS / "demo.ipynb"
BIN = Path(sys.executable).parent
ALL = sorted(NOTEBOOKS.glob("*.ipynb"))
GONE_WITHIN_S = 10.0


def _orphans(since: float) -> list[Any]:
    """Our containers created since `since` whose owner process no longer exists."""
    from sandbox_kernel.sandbox.backend import LABEL_CREATED
    from sandbox_kernel.sandbox.docker_backend import DockerBackend
    from sandbox_kernel.sandbox.reaper import owner_of

    backend = DockerBackend()
    try:
        rows = backend.list_owned()
    finally:
        backend.client.close()
    out = []
    for r in rows:
        try:
            created = float(r.labels.get(LABEL_CREATED, "0"))
        except ValueError:
            created = 0.0
        owner = owner_of(r)
        if created >= since and owner is not None and owner.alive() is False:
            out.append(r)
    return out


@pytest.fixture(autouse=True)
def _no_orphaned_containers() -> Iterator[None]:
    since = time.time() - 1
    yield
    deadline = time.monotonic() + GONE_WITHIN_S
    left = _orphans(since)
    while left and time.monotonic() < deadline:
        time.sleep(0.25)
        left = _orphans(since)
    if left:
        for r in left:
            subprocess.run(["docker", "rm", "-f", r.id], capture_output=True, check=False)
        pytest.fail(f"{len(left)} sandbox container(s) outlived their kernel: "
                    + ", ".join(r.name for r in left), pytrace=False)


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """A copy of notebooks/ (without previous results) to run in."""
    dest = tmp_path / "notebooks"
    shutil.copytree(NOTEBOOKS, dest, ignore=shutil.ignore_patterns("executed", ".*"))
    return dest


def _tagged(cell: Any) -> bool:
    return "raises-exception" in cell.get("metadata", {}).get("tags", [])


def check_executed(nb: Any) -> None:
    """Every code cell ran; errors appear only in cells tagged raises-exception."""
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code, "the notebook has no code cells"
    for i, c in enumerate(code):
        assert c.execution_count is not None, f"code cell {i} was not executed"
        errors = [o for o in c.outputs if o.output_type == "error"]
        if errors and not _tagged(c):
            raise AssertionError(f"code cell {i} failed unexpectedly: {errors[0].ename}: "
                                 f"{errors[0].evalue}\n{c.source[:300]}")
        if _tagged(c):
            assert errors, f"code cell {i} is tagged raises-exception but did not raise"


@pytest.mark.parametrize("path", ALL, ids=[p.name for p in ALL])
def test_notebook_runs_with_nbclient(path: Path, workdir: Path) -> None:
    nb = nbformat.read(workdir / path.name, as_version=4)
    kernel_name = nb.metadata.get("kernelspec", {}).get("name") or "sandbox"
    client = NotebookClient(nb, kernel_name=kernel_name, timeout=240, startup_timeout=120,
                            resources={"metadata": {"path": str(workdir)}})
    client.execute()
    check_executed(nb)


def _run(argv: list[str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          check=False)


@pytest.mark.skipif(not DEMO.exists(), reason="notebooks/demo.ipynb does not exist yet")
def test_demo_runs_with_nbconvert_execute(workdir: Path, tmp_path: Path) -> None:
    out = tmp_path / "demo-nbconvert.ipynb"
    proc = _run([str(BIN / "jupyter"), "nbconvert", "--to", "notebook", "--execute",
                 "--ExecutePreprocessor.kernel_name=sandbox", "--output", str(out),
                 str(workdir / "demo.ipynb")], cwd=workdir)
    assert proc.returncode == 0, proc.stderr[-3000:]
    check_executed(nbformat.read(out, as_version=4))


def test_papermill_runs_a_notebook_with_parameters(workdir: Path, tmp_path: Path) -> None:
    """`papermill -k sandbox` with a parameter: exit 0, and the parameter reached the sandbox.

    papermill fails a run on any error output (it ignores `raises-exception` tags), so it is
    shown on magics.ipynb, which has no intentional errors, rather than on the demo.
    """
    out = tmp_path / "magics-papermill.ipynb"
    proc = _run([str(BIN / "papermill"), "-k", "sandbox", "-p", "team", "blue",
                 str(workdir / "magics.ipynb"), str(out)], cwd=workdir)
    assert proc.returncode == 0, proc.stderr[-3000:]
    nb = nbformat.read(out, as_version=4)
    check_executed(nb)
    texts = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code"
                    for o in c.get("outputs", []))
    assert "blue 24" in texts, texts[-2000:]
