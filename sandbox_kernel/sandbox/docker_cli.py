"""The docker command line, for image builds (as docker/build-sandbox.sh uses it); sessions
talk to the engine through docker-py in docker_backend.py."""

from __future__ import annotations

import collections
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from ..errors import BuildError, EngineUnavailable, ImageMissing
from .image import build_hint

_NOISE = re.compile(r"DEPRECATED|legacy builder|BuildKit|buildx|environment-variable|"
                    r"Removing intermediate container|^ *---> |^\s*$|^\(Reading database \.\.\. \d")
_FAILED = re.compile(r"returned a non-zero code|^ERROR|^error", re.I)


def _client() -> str:
    found = shutil.which("docker")
    if found is None:
        raise EngineUnavailable("the docker client is not installed (it builds images)")
    return found


def docker(*args: str, timeout: float = 600) -> str:
    """Run one docker command; its stdout, or a one-line error."""
    try:
        proc = subprocess.run([_client(), *args], capture_output=True, text=True, check=False,
                              timeout=timeout)
    except subprocess.TimeoutExpired:
        raise BuildError(f"docker {args[0]} did not finish in {timeout:g} s") from None
    if proc.returncode != 0:
        text = " ".join(proc.stderr.split())[:300]
        if "Cannot connect to the Docker daemon" in text or "Is the docker daemon" in text:
            raise EngineUnavailable("no Docker engine is reachable; start dockerd (or run "
                                    "'make engine')")
        if "No such image" in text or "No such object" in text:
            raise ImageMissing(f"the image {args[-1]} is not on this Docker engine")
        raise BuildError(f"docker {args[0]} failed: {text}")
    return proc.stdout


def image_labels(image: str, missing_ok: bool = False) -> dict[str, str]:
    try:
        out = docker("image", "inspect", "-f", "{{json .Config.Labels}}", image)
    except ImageMissing:
        if missing_ok:
            return {}
        raise ImageMissing(f"the image {image} is not on this Docker engine; "
                           f"{build_hint(image)}") from None
    labels = json.loads(out or "null") or {}
    return {str(k): str(v) for k, v in labels.items()}


def docker_build(ctx: Path, tag: str, labels: Mapping[str, str], *,
                 no_cache: bool = False) -> None:
    """docker build ctx, its progress on stdout; BuildError naming the failing step."""
    argv = [_client(), "build", "--network", "host", "-t", tag]
    argv += [arg for k, v in labels.items() for arg in ("--label", f"{k}={v}")]
    if no_cache:
        argv.append("--no-cache")
    env = dict(os.environ)
    if "DOCKER_BUILDKIT" not in env:
        has_buildx = subprocess.run([argv[0], "buildx", "version"], capture_output=True,
                                    check=False).returncode == 0
        env["DOCKER_BUILDKIT"] = "1" if has_buildx else "0"
    tail: collections.deque[str] = collections.deque(maxlen=40)
    with subprocess.Popen([*argv, str(ctx)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, errors="replace", env=env) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            if _NOISE.search(line):
                continue
            tail.append(line.rstrip())
            sys.stdout.write("    " + line)
            sys.stdout.flush()
    if proc.returncode != 0:
        raise BuildError(f"docker build of {tag} failed: {failure(list(tail))}")


def failure(lines: list[str]) -> str:
    """The line that says why a build failed (the one before docker's own verdict)."""
    for i in range(len(lines) - 1, -1, -1):
        if _FAILED.search(lines[i]):
            before = [ln for ln in lines[:i] if ln.strip() and not ln.startswith("Step ")]
            reason = before[-1].strip() if before and "non-zero code" in lines[i] else ""
            return " ".join(f"{reason} ({lines[i].strip()})".split())[:400] if reason else \
                lines[i].strip()[:400]
    return lines[-1].strip()[:400] if lines else "no output"
