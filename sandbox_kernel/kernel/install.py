"""Install the kernelspecs: `sandbox` (Python 3) and `sandbox-node` (JavaScript)."""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path

from jupyter_client.kernelspec import KernelSpecManager

from ..sandbox.image import PACKAGE_DIR

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


def install(user: bool = False, sys_prefix: bool = False, prefix: str | None = None,
            name: str = "sandbox") -> list[str]:
    """Install both kernelspecs for this Python; return the directories written."""
    src = spec_dir()
    template = json.loads((src / "kernel.json").read_text())
    if sys_prefix:
        prefix = sys.prefix
    written = []
    for suffix, (display, language, extra) in SPECS.items():
        spec = dict(template)
        spec["argv"] = [sys.executable, "-m", "sandbox_kernel", "-f", "{connection_file}", *extra]
        spec["display_name"] = display
        spec["language"] = language
        spec["metadata"] = {**template.get("metadata", {}),
                            "sandbox_kernel": {"language": "node" if extra else "python"}}
        with tempfile.TemporaryDirectory() as tmp:
            for logo in src.glob("logo-*"):
                shutil.copy(logo, tmp)
            (Path(tmp) / "kernel.json").write_text(json.dumps(spec, indent=2) + "\n")
            written.append(KernelSpecManager().install_kernel_spec(
                tmp, kernel_name=name + suffix, user=user, prefix=prefix))
    return written
