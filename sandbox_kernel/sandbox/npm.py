"""npm packages for a derived image, resolved and fetched on the host with the host's npm.

`npm install --package-lock-only` resolves the tree into package-lock.json (sha512 integrity
for every tarball) and `npm cache add` fetches the tarballs into a cache in the build
context; each is checked against the lock's integrity here, and `npm ci --offline` in the
build checks them again. The host's npm configuration is ignored (user and global npmrc,
``npm_config_*``); the registry is ``$SANDBOX_NPM_REGISTRY``, else the npm registry.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import BuildError
from .wheels import one_line

REGISTRY = "https://registry.npmjs.org/"
PROJECT = "/opt/sandbox-node"  # where the image keeps them; node finds them via $PREFIX/lib/node


def registry(environ: Mapping[str, str] = os.environ) -> str:
    return environ.get("SANDBOX_NPM_REGISTRY") or REGISTRY


def run_npm(folder: Path, args: list[str], registry_url: str | None = None,
            cache: Path | None = None, timeout: float = 1800) -> subprocess.CompletedProcess[str]:
    """The host's npm in folder with its own configuration off; never raises on failure."""
    npm = shutil.which("npm")
    if npm is None:
        raise BuildError("npm is needed on the host to fetch npm packages (e.g. apt-get "
                         "install npm)")
    env = {k: v for k, v in os.environ.items() if not k.lower().startswith("npm_config_")}
    argv = [npm, *args, "--registry", registry_url or registry(),
            "--userconfig", str(folder / "no-user-npmrc"),
            "--globalconfig", str(folder / "no-global-npmrc"),
            "--cache", str(cache or folder / "cache"),
            "--no-audit", "--no-fund", "--ignore-scripts", "--update-notifier=false",
            "--loglevel=error"]
    try:
        return subprocess.run(argv, cwd=folder, env=env, capture_output=True, text=True,
                              check=False, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise BuildError(f"npm took longer than {timeout / 60:g} min") from None


def _npm(folder: Path, *args: str) -> None:
    proc = run_npm(folder, list(args))
    if proc.returncode != 0:
        raise BuildError(f"npm {args[0]} failed: {npm_error(proc.stderr)}")


def npm_error(stderr: str) -> str:
    """npm's error lines as one line, without the log-file pointer and the error code."""
    lines = [ln.removeprefix("npm error").removeprefix("npm ERR!").strip()
             for ln in stderr.splitlines() if ln.startswith(("npm error", "npm ERR!"))]
    keep = [ln for ln in lines if len(ln) > 4 and not ln.startswith((
        "A complete log", "code ", "errno ", "syscall ", "404 Note that", "404 This package"))]
    return " ".join("; ".join(keep[:2]).split())[:400] or one_line(stderr)


def _allows(listed: list[str], value: str) -> bool:
    """npm's os/cpu/libc fields: names allow, ``!name`` forbids."""
    if f"!{value}" in listed:
        return False
    allowed = [x for x in listed if not x.startswith("!")]
    return not allowed or value in allowed


def for_sandbox(entry: Mapping[str, Any]) -> bool:
    """Whether a lock entry installs on the sandbox (Linux x64, glibc)."""
    return all(_allows(list(entry.get(key) or []), value)
               for key, value in (("os", "linux"), ("cpu", "x64"), ("libc", "glibc")))


def fetch(deps: Mapping[str, str], folder: Path, keep: Mapping[str, str] | None = None) -> dict[
        str, str]:
    """Resolve and fetch deps (name -> range) into folder; returns name -> exact version.

    keep are packages the base image already has (name -> exact version), kept as they are.
    """
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    manifest = {"name": "sandbox-node-packages", "private": True,
                "description": "npm packages of this sandbox image (sandbox-kernel build-image)",
                "dependencies": dict(keep or {})}
    (folder / "package.json").write_text(json.dumps(manifest, indent=2) + "\n")
    _npm(folder, "install", "--package-lock-only", "--save-exact",
         *(f"{name}@{spec}" for name, spec in deps.items()))
    lock = json.loads((folder / "package-lock.json").read_text())
    entries = {path: e for path, e in lock.get("packages", {}).items()
               if path and not e.get("link") and for_sandbox(e)}
    specs = sorted({f"{e.get('name') or path.rsplit('node_modules/', 1)[-1]}@{e['version']}"
                    for path, e in entries.items()})
    if specs:
        _npm(folder, "cache", "add", *specs)
    for path, entry in entries.items():
        check_cached(folder / "cache", path, entry)
    top = json.loads((folder / "package.json").read_text()).get("dependencies", {})
    return {name: str(top[name]) for name in deps}


def sha512_hex(path: str, entry: Mapping[str, Any]) -> str:
    """The sha512 of a lock entry's tarball, from its integrity (BuildError if it has none)."""
    integrity = str(entry.get("integrity", ""))
    algo, _, b64 = next((i.partition("-") for i in integrity.split() if
                         i.startswith("sha512-")), ("", "", ""))
    if algo != "sha512":
        raise BuildError(f"npm package {path.removeprefix('node_modules/')} has no sha512 "
                         "integrity in its lock")
    return base64.b64decode(b64).hex()


def blob_path(cache: Path, digest: str) -> Path:
    """Where npm's cache (cacache) keeps content by its sha512."""
    return cache / "_cacache" / "content-v2" / "sha512" / digest[:2] / digest[2:4] / digest[4:]


def check_cached(cache: Path, path: str, entry: Mapping[str, Any]) -> Path:
    """The tarball of a lock entry is in the cache and matches its sha512 integrity."""
    digest = sha512_hex(path, entry)
    blob = blob_path(cache, digest)
    if not blob.is_file() or hashlib.sha512(blob.read_bytes()).hexdigest() != digest:
        raise BuildError(f"npm package {path.removeprefix('node_modules/')} was not fetched "
                         "or does not match its integrity")
    return blob
