"""`sandbox-kernel install` and `uninstall`: the Jupyter kernelspecs (kernel/install.py)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from .errors import ImageMissing, SandboxError


def cmd_install(args: argparse.Namespace) -> int:
    from .kernel.install import install

    for path in install(user=args.user, sys_prefix=args.sys_prefix, prefix=args.prefix,
                        name=args.name, display_name=args.display_name, image=args.image):
        print(f"installed kernelspec in {path}")
    if args.image:
        _note_missing_image(args.image, args.image_labels)
    return 0


def cmd_uninstall(args: argparse.Namespace) -> int:
    from .kernel.install import uninstall

    for path in uninstall(args.name):
        print(f"removed kernelspec {path}")
    return 0


def _note_missing_image(image: str, image_labels: Callable[[str], object]) -> None:
    """A kernelspec may name an image not built yet: say so, without failing."""
    try:
        image_labels(image)
    except ImageMissing:
        print(f"note: the image {image} is not on this Docker engine yet; build it with "
              "'sandbox-kernel build-image ... --tag' before starting the kernel",
              file=sys.stderr)
    except SandboxError:
        pass  # no engine here: the kernel will say so when it starts


def add_kernelspec_commands(sub: Any, image_labels: Callable[[str], object]) -> None:
    """install and uninstall; image_labels reads an image's labels (ImageMissing if absent)."""
    s = sub.add_parser("install", help="install the Jupyter kernelspecs")
    where = s.add_mutually_exclusive_group()
    where.add_argument("--user", action="store_true", help="into the user's Jupyter data dir")
    where.add_argument("--sys-prefix", action="store_true", help="into sys.prefix (a venv)")
    where.add_argument("--prefix", help="into PREFIX/share/jupyter/kernels")
    s.add_argument("--name", default="sandbox",
                   help="kernelspec name (default: sandbox; the Node.js one gets -node)")
    s.add_argument("--display-name",
                   help="name in the launcher (default: Python 3 (sandbox), or with --name "
                        "X: Python 3 (sandbox: X)); the Node.js kernel gets ' (JavaScript)' "
                        "added")
    s.add_argument("--image", dest="image", default=argparse.SUPPRESS,
                   help="the kernels' sandbox image, e.g. one made by build-image --tag")
    s.set_defaults(func=cmd_install, image_labels=image_labels)

    s = sub.add_parser("uninstall", help="remove a pair of kernelspecs 'install' made")
    s.add_argument("--name", default="sandbox",
                   help="kernelspec name (default: sandbox; its -node twin goes too)")
    s.set_defaults(func=cmd_uninstall)
