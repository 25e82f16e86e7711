"""The sandbox image's lock file: regenerate it from requirements.in, and fetch its wheels.

    python -m sandbox_kernel.sandbox.lock compile docker/sandbox/requirements.in LOCK [--upgrade]
    python -m sandbox_kernel.sandbox.lock fetch LOCK DEST

``compile`` (docker/lock-wheels.sh) resolves on the host for the sandbox's platform and pins
each distribution by the sha256 of the one wheel the image installs; versions already in LOCK
are kept unless --upgrade. ``fetch`` (docker/build-sandbox.sh) downloads exactly those wheels
into DEST, hash-checked, and is a no-op (no network) when DEST already matches LOCK.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from ..errors import SandboxError
from . import wheels
from .packages import Pin

HEADER = """\
# Python packages of the sandbox image: every distribution, each pinned by the sha256 of its
# wheel for CPython {python} on manylinux x86_64 (glibc 2.{glibc}), resolved on the host.
# docker/build-sandbox.sh fetches them (pip download, hash-checked) and the Dockerfile installs
# them offline with --require-hashes --no-deps.
# Top level: {source}. Regenerate with docker/lock-wheels.sh (make lock);
# docker/lock-wheels.sh --upgrade moves every package to its newest release. Do not edit.
"""
MARKER = ".lock-sha256"


def lock_text(pins: Sequence[Pin], source: str) -> str:
    header = HEADER.format(python=wheels.PYTHON_VERSION, glibc=wheels.GLIBC_MINOR,
                           source=source)
    return header + "".join(p.line() + "\n" for p in sorted(pins, key=lambda p: p.name))


def compile_lock(source: Path, lock: Path, *, upgrade: bool = False,
                 label: str | None = None) -> list[Pin]:
    """Resolve source for the sandbox, fetch every wheel once, and write lock."""
    resolved = wheels.resolve(source, preferences=lock, upgrade=upgrade)
    with tempfile.TemporaryDirectory(prefix="sandbox-lock-") as tmp:
        files = wheels.download(resolved, Path(tmp))
        pins = wheels.pin_files(resolved, files)
    lock.write_text(lock_text(pins, label or source.name))
    return pins


def fetch(lock: Path, dest: Path) -> int:
    """Make dest hold exactly the wheels of lock; returns how many there are."""
    pins = wheels.parse_pins(lock.read_text())
    if not pins:
        raise SandboxError(f"{lock} pins no packages")
    if any(len(p.hashes) == 0 for p in pins):
        raise SandboxError(f"{lock}: every package must carry a --hash")
    digest = hashlib.sha256(lock.read_bytes()).hexdigest()
    marker = dest / MARKER
    if marker.is_file() and marker.read_text() == digest:
        try:
            return len(wheels.wheels_in(dest, pins))
        except SandboxError:
            pass  # a wheel was removed by hand: fetch again
    marker.unlink(missing_ok=True)
    files = wheels.download(pins, dest)
    keep = set(files.values())
    for stale in dest.glob("*.whl"):
        if stale not in keep:
            stale.unlink()
    marker.write_text(digest)
    return len(files)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m sandbox_kernel.sandbox.lock")
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("compile", help="resolve requirements.in into the hash-pinned lock")
    c.add_argument("source", type=Path)
    c.add_argument("lock", type=Path)
    c.add_argument("--upgrade", action="store_true", help="newest releases, not the lock's")
    c.add_argument("--label", help="how the header names the source")
    f = sub.add_parser("fetch", help="download the lock's wheels into DEST")
    f.add_argument("lock", type=Path)
    f.add_argument("dest", type=Path)
    args = p.parse_args(argv)
    try:
        if args.cmd == "compile":
            pins = compile_lock(args.source, args.lock, upgrade=args.upgrade, label=args.label)
            print(f"{args.lock}: {len(pins)} packages pinned")
        else:
            print(f"{fetch(args.lock, args.dest)} wheels")
    except SandboxError as exc:
        print(f"sandbox-kernel: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
