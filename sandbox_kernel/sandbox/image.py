"""Where the image build files are, and whether the local image matches this agent."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent.parent
_HASHED = ("Dockerfile", "entrypoint.sh", "limits.conf", "healthcheck.sh", "requirements.lock")


def docker_dir() -> Path:
    """docker/ of a source checkout, else the copy packaged in the wheel."""
    for candidate in (PACKAGE_DIR.parent / "docker", PACKAGE_DIR / "_docker"):
        if (candidate / "build-sandbox.sh").is_file():
            return candidate
    raise FileNotFoundError("the image build files (docker/) are not installed")


def agent_hash() -> str:
    """The hash build-sandbox.sh stamps on the image: build files plus agent sources."""
    ctx = docker_dir() / "sandbox"
    h = hashlib.sha256()
    for name in _HASHED:
        h.update((ctx / name).read_bytes())
    h.update((PACKAGE_DIR / "__init__.py").read_bytes())
    agent = PACKAGE_DIR / "agent"
    names = sorted(os.listdir(agent), key=lambda n: n.encode())
    for suffix in (".js", ".py"):
        for name in names:
            if name.endswith(suffix):
                h.update((agent / name).read_bytes())
    return h.hexdigest()[:16]
