"""The Jupyter project's kernel conformance suite (jupyter_kernel_test) for both kernelspecs.

Every test of ``KernelTests`` that applies to a Python kernel has a sample here, so none is
skipped for `sandbox`; `sandbox-node` gets the ones that make sense for JavaScript.
"""

from __future__ import annotations

import base64
from typing import Any

import jupyter_kernel_test
import pytest

from .conftest import KERNEL_PIDS

pytestmark = pytest.mark.docker

# A 1x1 PNG, sent as raw bytes through IPython.display.Image.
_PNG_B64 = ("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9"
            "awAAAABJRU5ErkJggg==")
assert base64.b64decode(_PNG_B64)[:4] == b"\x89PNG"


class _RegisterPid:
    """Records the kernel's pid so the module's leak check covers its containers."""

    km: Any

    @classmethod
    def setUpClass(cls) -> None:
        super().setUpClass()  # type: ignore[misc]
        KERNEL_PIDS.add(cls.km.provisioner.process.pid)  # type: ignore[union-attr]


class TestSandboxPythonConformance(_RegisterPid, jupyter_kernel_test.KernelTests):
    kernel_name = "sandbox"
    language_name = "python"
    file_extension = ".py"

    code_hello_world = "print('hello, world')"
    code_stderr = "import sys; print('test', file=sys.stderr)"

    completion_samples = [
        {"text": "zi", "matches": {"zip"}},
        {"text": "isinst", "matches": {"isinstance"}},
    ]

    complete_code_samples = ["1", "print('hello, world')", "def f(x):\n  return x*2\n\n\n",
                             "%sandbox status"]
    incomplete_code_samples = ["print('''hello", "def f(x):\n  x*2", "for i in range(3):"]
    invalid_code_samples = ["import = 7q", "x = )"]

    code_page_something = "print?"

    code_generate_error = "raise ValueError('conformance')"

    code_execute_result = [
        {"code": "1+2+3", "result": "6"},
        {"code": "'a' + 'b'", "result": "'ab'"},
        {"code": "[1, 2, 3][-1]", "result": "3"},
        {"code": "from IPython.display import HTML\nHTML('<b>x</b>')", "mime": "text/html",
         "result": "<b>x</b>"},
    ]

    code_display_data = [
        {"code": "from IPython.display import display, HTML\ndisplay(HTML('<b>x</b>'))",
         "mime": "text/html"},
        {"code": "from IPython.display import display, Math\ndisplay(Math(r'\\alpha^2'))",
         "mime": "text/latex"},
        {"code": "import base64\nfrom IPython.display import display, Image\n"
                 f"display(Image(data=base64.b64decode('{_PNG_B64}'), format='png'))",
         "mime": "image/png"},
        {"code": "from IPython.display import display, Markdown\ndisplay(Markdown('**md**'))",
         "mime": "text/html"},  # markdown is rendered to HTML on the host (policy/)
    ]

    code_history_pattern = "1?2*"
    supported_history_operations = ("tail", "range", "search")

    code_inspect_sample = "zip"

    code_clear_output = "from IPython.display import clear_output; clear_output()"


class TestSandboxNodeConformance(_RegisterPid, jupyter_kernel_test.KernelTests):
    kernel_name = "sandbox-node"
    language_name = "javascript"
    file_extension = ".js"

    code_hello_world = "console.log('hello, world')"
    code_stderr = "console.error('oops')"

    completion_samples = [{"text": "Math.fl", "matches": {"floor"}}]

    complete_code_samples = ["1+1", "function f() { return 1; }", "let a = [1, 2];"]
    incomplete_code_samples = ["function f() {", "[1, 2,"]
    invalid_code_samples = ["1 +* 2", "}"]

    code_generate_error = "throw new Error('x')"

    code_execute_result = [
        {"code": "6*7", "result": "42"},
        {"code": "'a' + 'b'", "result": "'ab'"},
    ]

    code_display_data = [{"code": "display.html('<b>x</b>')", "mime": "text/html"},
                         {"code": "display.markdown('**md**')", "mime": "text/html"}]

    code_history_pattern = "6?7"
    supported_history_operations = ("tail", "range", "search")

    code_inspect_sample = "Math.floor"

