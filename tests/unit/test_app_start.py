"""The kernel app leaves out the start-up steps only a kernel running user code on the host
needs, and the output sanitizers until an output needs them (docs/architecture.md,
"Starting"): they cost every kernel process memory."""

from __future__ import annotations

import json
import subprocess
import sys

PROBE = """
import json, sys
from sandbox_kernel.kernel.app import SandboxKernelApp
app = SandboxKernelApp()
ip = app.ip
app.init_pdb()
print(json.dumps({"ip": ip, "loaded": sorted(m for m in ("psutil", "pdb", "IPython.core.debugger",
                                                        "nh3", "tinycss2")
                                              if m in sys.modules)}))
"""


def test_the_loopback_default_no_pdb_patch_and_no_sanitizer_import_nothing_more() -> None:
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True,
                         timeout=60, check=True).stdout
    assert json.loads(out.splitlines()[-1]) == {"ip": "127.0.0.1", "loaded": []}


def test_an_ipc_kernel_keeps_jupyters_default_address() -> None:
    from sandbox_kernel.kernel.app import SandboxKernelApp

    app = SandboxKernelApp(transport="ipc", connection_file="/tmp/kernel-x.json")
    assert app.ip == "/tmp/kernel-x-ipc"
