"""The Jupyter-free session layer: values, sessions, the manager, pool and reaper.

The names below are imported on first use, so that importing one light module of this
package (spec.py, image.py) does not import the session core and the engine client.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .image import DEFAULT_IMAGE
    from .manager import SandboxManager
    from .session import AsyncSession
    from .spec import CellResult, ExecResult, FileInfo, FileOp, Health, Limits, SessionInfo
    from .sync import Session

_WHERE = {"DEFAULT_IMAGE": "image", "SandboxManager": "manager", "AsyncSession": "session",
          "Session": "sync", **dict.fromkeys(("CellResult", "ExecResult", "FileInfo", "FileOp",
                                              "Health", "Limits", "SessionInfo"), "spec")}

__all__ = [
    "DEFAULT_IMAGE",
    "AsyncSession",
    "CellResult",
    "ExecResult",
    "FileInfo",
    "FileOp",
    "Health",
    "Limits",
    "SandboxManager",
    "Session",
    "SessionInfo",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{module}", __name__), name)
