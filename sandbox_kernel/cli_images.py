"""`sandbox-kernel build-image`: the sandbox image (docker/build-sandbox.sh), or an image
derived from it with a project's packages (sandbox/derived.py)."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .errors import UsageError


def cmd_build_image(args: argparse.Namespace) -> int:
    if args.requirements or args.apt or args.npm:
        return _build_derived(args)
    if args.from_image:
        raise UsageError("--from is for derived images: give --requirements, --apt or --npm")
    from .sandbox.image import PACKAGE_DIR, docker_dir
    from .sandbox.packages import check_tag

    tag = check_tag(args.tag) if args.tag else args.image_of(args)
    script = docker_dir() / "build-sandbox.sh"
    argv = ["bash", str(script), "--tag", tag, "--agent-src", str(PACKAGE_DIR)]
    if args.base:
        argv += ["--base", args.base]
    if args.force:
        argv.append("--force")
    if args.no_cache:
        argv.append("--no-cache")
    env = {**os.environ, "PYTHON": sys.executable}
    return subprocess.call(argv, env=env)


def _build_derived(args: argparse.Namespace) -> int:
    from .sandbox import derived
    from .sandbox.packages import check_apt, check_npm, check_tag, parse_requirements

    if args.base:
        raise UsageError("--base is the OS image of the sandbox image itself; a derived image "
                         "builds on --from IMAGE (default: the sandbox image)")
    if not args.tag:
        raise UsageError("a derived image needs --tag, e.g. --tag sandbox-kernel/course:1")
    spec = derived.DerivedSpec(
        tag=check_tag(args.tag), base=check_tag(args.from_image or args.image_of(args), "--from"),
        requirements=parse_requirements(Path(args.requirements)) if args.requirements else None,
        apt=check_apt(args.apt), npm=check_npm(args.npm), force=args.force,
        no_cache=args.no_cache)
    built = derived.build(spec)
    if built:
        print(f"Image built successfully: {spec.tag}; install a kernel for it with "
              f"'sandbox-kernel install --name NAME --display-name \"...\" --image {spec.tag}'")
    return 0


def add_build_image(sub: Any, image_of: Callable[[argparse.Namespace], str]) -> None:
    """The build-image subcommand; image_of gives the sandbox image the user means."""
    s = sub.add_parser(
        "build-image", help="build the sandbox image, or one derived from it with more "
                            "packages (no registry needed)",
        description="Without packages: build the sandbox image. With --requirements, --apt or "
                    "--npm: build --tag FROM the sandbox image (or --from) with those packages, "
                    "fetched on the host for the sandbox's platform and hash-checked.")
    s.add_argument("--tag", help="image to build (default: the sandbox image; required for a "
                                 "derived image)")
    s.add_argument("--requirements", "-r", metavar="FILE",
                   help="pip requirements; with --hash on every line they are used as given, "
                        "else the host pins what it downloads")
    s.add_argument("--apt", nargs="+", action="extend", default=[], metavar="PKG",
                   help="Debian packages, installed with apt-get in the build")
    s.add_argument("--npm", nargs="+", action="extend", default=[], metavar="PKG",
                   help="npm packages (name or name@range), require()-able in Node cells")
    s.add_argument("--from", dest="from_image", metavar="IMAGE",
                   help="image a derived image builds on (default: the sandbox image)")
    s.add_argument("--base", help="OS image of the sandbox image (default: bootstrap Debian "
                                  "bookworm)")
    s.add_argument("--force", action="store_true", help="rebuild even if up to date")
    s.add_argument("--no-cache", action="store_true", help="docker build --no-cache")
    s.set_defaults(func=cmd_build_image, image_of=image_of)

