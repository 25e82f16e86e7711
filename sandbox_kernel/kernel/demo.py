"""`make demo`: run notebooks/demo.ipynb in the sandbox kernel with nbclient.

Writes the executed notebook to notebooks/executed/demo.ipynb and prints where it is,
plus one line per cell. Cells tagged `raises-exception` are expected to fail.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from .accounting import record


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    root = Path(__file__).resolve().parents[2]
    source = Path(args[0]) if args else root / "notebooks" / "demo.ipynb"
    target = source.parent / "executed" / source.name
    nb = nbformat.read(source, as_version=4)
    kernel = nb.metadata.get("kernelspec", {}).get("name", "sandbox")
    print(f"Running {source} with kernel '{kernel}' (every cell runs in a Docker sandbox)...")
    t0 = time.perf_counter()
    client = NotebookClient(nb, kernel_name=kernel, timeout=600, on_cell_executed=record,
                            resources={"metadata": {"path": str(source.parent)}})
    try:
        client.execute()
    except CellExecutionError as exc:
        print(f"demo failed: {str(exc).splitlines()[0] if str(exc) else exc}", file=sys.stderr)
        return 1
    finally:
        target.parent.mkdir(exist_ok=True)
        nbformat.write(nb, target)
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        outputs = cell.get("outputs", [])
        kinds = sorted({o.get("output_type", "?") for o in outputs})
        first = cell.source.splitlines()[0] if cell.source else ""
        figures = cell.metadata.get("sandbox", {})
        verdict = figures.get("verdict", "?")
        peak = figures.get("peak_memory")
        cost = f" {peak / 2**20:.0f} MB peak" if peak else ""
        print(f"  [{i:2}] {first[:44]:<44} {verdict:<7}{cost:>12} -> "
              f"{', '.join(kinds) or 'no output'}")
    print(f"Done in {time.perf_counter() - t0:.1f} s. Executed notebook: {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
