"""Where the image build files are, and whether the local image matches this agent."""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping
from pathlib import Path

from ..agent.protocol import PROTOCOL_VERSION

PACKAGE_DIR = Path(__file__).resolve().parent.parent
DEFAULT_IMAGE = f"sandbox-kernel:agent-v{PROTOCOL_VERSION}"


def default_image() -> str:
    """$SANDBOX_IMAGE if set (as for `sandbox-kernel build-image`), else DEFAULT_IMAGE."""
    return os.environ.get("SANDBOX_IMAGE") or DEFAULT_IMAGE
_HASHED = ("Dockerfile", "entrypoint.sh", "limits.conf", "healthcheck.sh", "requirements.lock")


def build_hint(image: str) -> str:
    """The command that builds a missing sandbox image under the tag it was asked by."""
    return (f"build it with 'sandbox-kernel build-image --tag {image[:200]}' (a derived "
            "image: also give the --requirements, --apt or --npm it was made with)")


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


def build_cache(environ: Mapping[str, str] = os.environ) -> Path:
    """Per-user staging for image builds (never inside the package or the source tree):
    $SANDBOX_BUILD_DIR, else $XDG_CACHE_HOME/sandbox-kernel/build, else ~/.cache/..."""
    if environ.get("SANDBOX_BUILD_DIR"):
        return Path(environ["SANDBOX_BUILD_DIR"])
    cache = environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "sandbox-kernel" / "build"


def context_dir(tag: str, environ: Mapping[str, str] = os.environ) -> Path:
    """The build context of one image tag (one per tag, so concurrent builds do not mix);
    docker/build-sandbox.sh names it the same way."""
    digest = hashlib.sha256(tag.encode()).hexdigest()[:8]
    return build_cache(environ) / f"{re.sub(r'[^A-Za-z0-9._-]', '_', tag)}-{digest}"
