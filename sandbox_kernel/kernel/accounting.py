"""Keep per-cell resource accounting in notebooks executed by nbclient.

Every execute_reply of this kernel carries `metadata.sandbox` (verdict, peak memory, CPU
and wall seconds), but nbclient saves no reply metadata. Pass `record` as its
`on_cell_executed` hook and each cell's figures land in `cell.metadata.sandbox`:

    NotebookClient(nb, kernel_name="sandbox", on_cell_executed=record).execute()
"""

from __future__ import annotations

from typing import Any


def record(cell: Any, cell_index: int, execute_reply: dict[str, Any]) -> None:
    """nbclient hook: copy the reply's sandbox accounting into the cell's metadata."""
    figures = (execute_reply.get("metadata") or {}).get("sandbox")
    if isinstance(figures, dict):
        cell.setdefault("metadata", {})["sandbox"] = dict(figures)
