"""The kernel process imports none of what a kernel running user code on the host needs,
and the output sanitizers only when an output needs them (docs/architecture.md, "The
kernel process"): each would cost every notebook memory."""

from __future__ import annotations

import json
import subprocess
import sys

NOT_LOADED = ("ipykernel", "IPython", "jupyter_client", "tornado", "dateutil", "psutil", "pdb",
              "nh3", "tinycss2", "ipywidgets")
PROBE = f"""
import json, sys
from sandbox_kernel.kernel.app import SandboxKernelApp
import sandbox_kernel.kernel.kernel
print(json.dumps(sorted({{m.split(".")[0] for m in sys.modules}} & set({NOT_LOADED!r}))))
"""


def test_the_kernel_process_loads_no_ipykernel_jupyter_client_or_sanitizer() -> None:
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True,
                         timeout=60, check=True).stdout
    assert json.loads(out.splitlines()[-1]) == []


def test_the_command_line_takes_ipykernels_connection_and_logging_options() -> None:
    from sandbox_kernel.kernel.app import SandboxKernelApp

    app = SandboxKernelApp()
    app.parse_command_line(["-f", "/tmp/kernel-1.json", "--log-level=DEBUG"])
    assert (app.connection_file, app.log_level) == ("/tmp/kernel-1.json", 10)
    app = SandboxKernelApp()
    app.parse_command_line(["--debug"])
    assert app.log_level == 10
