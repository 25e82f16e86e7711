"""Install the kernelspecs: `sandbox` (Python 3) and `sandbox-node` (JavaScript), or a pair
with another name, display name and image (a derived image of a course or project)."""

from __future__ import annotations

import compileall
import contextlib
import json
import re
import shutil
import sys
import tempfile
from pathlib import Path

from jupyter_client.kernelspec import KernelSpecManager

from ..errors import UsageError
from ..sandbox.image import PACKAGE_DIR
from ..sandbox.packages import check_tag

#: name suffix -> (display name, language, extra kernel arguments)
SPECS = {
    "": ("Python 3 (sandbox)", "python", []),
    "-node": ("JavaScript (Node.js, sandbox)", "javascript", ["--Sandbox.language=node"]),
}


def spec_dir() -> Path:
    for candidate in (PACKAGE_DIR.parent / "kernelspec", PACKAGE_DIR / "_kernelspec"):
        if (candidate / "kernel.json").is_file():
            return candidate
    raise FileNotFoundError("the kernelspec files are not installed")


def check_names(name: str, display_name: str | None) -> None:
    """Kernelspec names as jupyter_client accepts them; display names one printable line."""
    if not re.fullmatch(r"[A-Za-z0-9._-]{1,60}", name):
        raise UsageError(f"--name {name!r} must be 1 to 60 letters, digits, '.', '_' or '-'")
    if display_name is not None and (not display_name.strip() or len(display_name) > 100
                                     or not display_name.isprintable()):
        raise UsageError("--display-name must be one printable line of 1 to 100 characters")


def install(user: bool = False, sys_prefix: bool = False, prefix: str | None = None,
            name: str = "sandbox", display_name: str | None = None,
            image: str | None = None) -> list[str]:
    """Install both kernelspecs for this Python; return the directories written.

    With image, the kernels run their sandboxes in that image (--Sandbox.image in argv).
    """
    check_names(name, display_name)
    if image is not None:
        check_tag(image, "--image")
    src = spec_dir()
    template = json.loads((src / "kernel.json").read_text())
    if sys_prefix:
        prefix = sys.prefix
    written = []
    for suffix, (default_display, language, extra) in SPECS.items():
        display = default_display
        if display_name:
            display = display_name + (" (JavaScript)" if suffix else "")
        elif name != "sandbox":  # another pair: tell them apart in the launcher
            display = default_display.replace("sandbox)", f"sandbox: {name})")
        spec = dict(template)
        spec["argv"] = [sys.executable, "-m", "sandbox_kernel", "-f", "{connection_file}",
                        *([f"--Sandbox.image={image}"] if image else []), *extra]
        spec["display_name"] = display
        spec["language"] = language
        spec["metadata"] = {**template.get("metadata", {}),
                            "sandbox_kernel": {"language": "node" if extra else "python",
                                               **({"image": image} if image else {})}}
        with tempfile.TemporaryDirectory() as tmp:
            for logo in src.glob("logo-*"):
                shutil.copy(logo, tmp)
            (Path(tmp) / "kernel.json").write_text(json.dumps(spec, indent=2) + "\n")
            written.append(KernelSpecManager().install_kernel_spec(
                tmp, kernel_name=name + suffix, user=user, prefix=prefix))
    compile_package()
    return written


def compile_package() -> None:
    """Bytecode for the kernel's modules, as pip writes for a wheel: a source checkout run
    with PYTHONDONTWRITEBYTECODE would compile ~60 modules at every kernel start (~0.1 s)."""
    with contextlib.suppress(OSError):  # a read-only install: it starts, only slower
        compileall.compile_dir(str(PACKAGE_DIR), quiet=1)


def uninstall(name: str = "sandbox") -> list[str]:
    """Remove the pair of kernelspecs `name` and `name-node`; return the directories removed.

    Only kernelspecs that start this kernel are removed; another kernel's of that name is
    refused, so a typo cannot delete someone else's kernel.
    """
    check_names(name, None)
    ksm = KernelSpecManager()
    specs = ksm.get_all_specs()
    removed = []
    for kernel in (name, name + "-node"):
        found = specs.get(kernel)
        if found is None:
            continue
        if "sandbox_kernel" not in (found.get("spec", {}).get("argv") or []):
            raise UsageError(f"the kernelspec {kernel!r} ({found['resource_dir']}) is not a "
                             "sandbox kernel; remove it with 'jupyter kernelspec remove'")
        removed.append(ksm.remove_kernel_spec(kernel))
    if not removed:
        raise UsageError(f"no sandbox kernelspec named {name!r} is installed; see "
                         "'jupyter kernelspec list'")
    return removed
