"""Cell filenames as ipykernel names them: `/tmp/ipykernel_PID/HASH.py`.

Tracebacks still say `Cell In[N]` (IPython maps the name back to the cell), while
warnings, SyntaxError text, `co_filename` and debugger frames carry the same path as
under ipykernel; HASH is MurmurHash2 (32-bit) of the cell's UTF-8 text with ipykernel's
seed, so one cell gets the same name under both kernels for the same pid.
"""

from __future__ import annotations

import os
import tempfile
from typing import Any

#: ipykernel's seed for cell-name hashes.
SEED = 0xC70F6907
_M = 0x5BD1E995
_MASK = 0xFFFFFFFF


def murmur2(data: bytes, seed: int = SEED) -> int:
    """MurmurHash2, 32-bit, little-endian words (Austin Appleby's algorithm)."""
    h = (seed ^ len(data)) & _MASK
    whole = len(data) - len(data) % 4
    for i in range(0, whole, 4):
        k = int.from_bytes(data[i:i + 4], "little")
        k = (k * _M) & _MASK
        k ^= k >> 24
        k = (k * _M) & _MASK
        h = ((h * _M) & _MASK) ^ k
    tail = data[whole:]
    if tail:
        h ^= int.from_bytes(tail, "little")
        h = (h * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    h ^= h >> 15
    return h


def cell_filename(code: str, pid: int | None = None) -> str:
    """The file name ipykernel gives a cell ($IPYKERNEL_CELL_NAME if set, as there)."""
    fixed = os.environ.get("IPYKERNEL_CELL_NAME")
    if fixed is not None:
        return fixed
    folder = os.path.join(tempfile.gettempdir(), f"ipykernel_{os.getpid() if pid is None else pid}")
    return os.path.join(folder, f"{murmur2(code.encode('utf-8'))}.py")


def compiler_class() -> Any:
    """IPython's CachingCompiler naming cells as ipykernel's XCachingCompiler does."""
    from IPython.core.compilerop import CachingCompiler

    class CellCompiler(CachingCompiler):
        def get_code_name(self, raw_code: str, transformed_code: str, number: int) -> str:
            return cell_filename(raw_code)

    return CellCompiler
