"""The Jupyter-free session layer: values, sessions, the manager, pool and reaper."""

from .manager import DEFAULT_IMAGE, SandboxManager
from .session import Session
from .spec import CellResult, ExecResult, FileInfo, FileOp, Health, Limits, SessionInfo

__all__ = [
    "DEFAULT_IMAGE",
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
