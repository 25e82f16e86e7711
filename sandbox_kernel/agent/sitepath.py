"""The session's installed Python packages on sys.path, as a site directory of its own.

The Python worker calls `activate()` at its start; the image also installs this file as
`_sandbox_packages.py` with a .pth file in the venv's site-packages, so every interpreter a
cell starts (`!python`, `%%bash`) sees them too. The directory goes after the standard
library and before the image's site-packages, as pip would put a newer version over an
installed one (docs/architecture.md, "Packages"). Never for the agent or the installer:
both run without site, and their uids are skipped here as well. Standard library only.
"""

from __future__ import annotations

import os
import site
import sys

DEFAULT_DIR = "/opt/sandbox-packages"


def _skipped() -> bool:
    uid = os.getuid()
    for name in ("SANDBOX_AGENT_UID", "SANDBOX_INSTALLER_UID"):
        value = os.environ.get(name, "")
        if value.isdigit() and int(value) == uid:
            return True
    return False


def activate() -> str | None:
    """Put ROOT/python on sys.path (with its .pth files); the directory, or None."""
    root = os.environ.get("SANDBOX_PACKAGES_DIR") or DEFAULT_DIR
    target = os.path.join(root, "python")
    if target in sys.path or not os.path.isdir(target) or _skipped():
        return None
    before = list(sys.path)
    site.addsitedir(target)
    added = [p for p in sys.path if p not in before]
    at = next((i for i, p in enumerate(before) if p.endswith("site-packages")), len(before))
    sys.path[:] = before[:at] + added + before[at:]
    return target


def cwd_after_stdlib() -> None:
    """The working directory on sys.path as ipykernel has it: `''` after the standard
    library, before site-packages. The worker starts with `-P` (spawn.py), so a notebook's
    `json.py` can neither break the worker's own imports nor shadow the stdlib's later."""
    if "" in sys.path:
        return
    at = next((i for i, p in enumerate(sys.path)
               if os.path.basename(p) in ("site-packages", "dist-packages")), 0)
    sys.path.insert(at, "")


if __name__ == "_sandbox_packages":  # imported by the image's .pth file
    activate()
