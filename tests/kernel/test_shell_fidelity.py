"""Where the Python shell must look like ipykernel's, through jupyter_client: cell
filenames (co_filename, warnings, tracebacks) and IPython's %%bash options."""

from __future__ import annotations

import re

import pytest
from ipykernel.compiler import murmur2_x86

from .conftest import KernelHandle

pytestmark = pytest.mark.docker

ANSI = re.compile(r"\x1b\[[0-9;]*m")


def ipykernel_name(code: str, pid: int) -> str:
    return f"/tmp/ipykernel_{pid}/{murmur2_x86(code, 0xC70F6907)}.py"


def test_cells_are_named_as_ipykernel_names_them(k: KernelHandle) -> None:
    pid = int(k.value("import os; os.getpid()"))
    code = "import sys; sys._getframe().f_code.co_filename"
    assert k.value(code) == repr(ipykernel_name(code, pid))
    code = "import warnings\nwarnings.warn('careful')"
    r = k.ok(code)
    assert f"{ipykernel_name(code, pid)}:2: UserWarning: careful" in r.text("stderr"), r


def test_tracebacks_still_name_the_cell(k: KernelHandle) -> None:
    r = k.execute("def f():\n    return 1 / 0\nf()")
    text = ANSI.sub("", "\n".join(r.errors[0]["traceback"]))
    assert re.search(r"Cell In\[\d+\], line 3", text), text
    assert re.search(r"Cell In\[\d+\], line 2, in f", text), text
    r = k.execute("1 +")
    text = ANSI.sub("", "\n".join(r.errors[0]["traceback"]))
    assert r.reply["ename"] == "SyntaxError" and "Cell In[" in text, text


def test_bash_out_and_err_store_their_variables(k: KernelHandle) -> None:
    r = k.ok("%%bash --out captured --err complaints\necho hello\necho oops >&2")
    assert r.text() == ""
    assert k.value("captured") == "'hello\\n'"
    assert k.value("complaints") == "'oops\\n'"


def test_bash_bg_and_proc(k: KernelHandle) -> None:
    r = k.ok("%%bash --bg --proc job\nsleep 0.3; echo in the background > bg.txt")
    assert r.text() == ""  # returns at once
    assert k.value("import time; time.sleep(1.5); job.returncode") == "0"
    assert k.value("open('bg.txt').read()") == "'in the background\\n'"


def test_a_failing_bash_cell_is_worded_as_ipython_words_it(k: KernelHandle) -> None:
    r = k.execute("%%bash\nexit 3")
    assert (r.reply["ename"], r.reply["evalue"]) == (
        "CalledProcessError", "Command 'b'exit 3\\n'' returned non-zero exit status 3.")


def test_the_shell_is_named_as_ipykernels(k: KernelHandle) -> None:
    assert k.value("get_ipython().__class__.__name__") == "'ZMQInteractiveShell'"


def test_ipykernels_own_magics_are_there(k: KernelHandle) -> None:
    assert k.ok("%autosave 30").text("stdout") == "Autosaving every 30 seconds\n"
    r = k.execute("%autosave soon")
    assert r.status == "error"
    assert r.text("stderr") == "UsageError: %autosave requires an integer, got 'soon'\n"
    r = k.ok("stored_value = 42\n%store stored_value")
    assert r.text("stdout") == "Stored 'stored_value' (int)\n", r
    k.ok("open('paged.txt', 'w').write('page me')")
    r = k.ok("%less paged.txt")
    assert [p["data"]["text/plain"] for p in r.reply["payload"]] == ["page me"], r.reply
    assert "Could not get connection info" in k.ok("%connect_info").text("stderr")
    assert k.ok("%subshell").text("stdout") == "Kernel does not support subshells\n"


NOTEBOOK_VARS = ("TERM", "CLICOLOR", "FORCE_COLOR", "CLICOLOR_FORCE", "PAGER", "GIT_PAGER")


def test_programs_see_ipykernels_environment(k: KernelHandle) -> None:
    """ipykernel sets these for what a cell starts (colour on, pagers off): so here, for
    Python cells, `!cmd` and agent-run shell cells alike; a Node cell's console stays plain."""
    local = KernelHandle("python3")
    try:
        expected = local.value(f"import os; [os.environ.get(k) for k in {NOTEBOOK_VARS}]")
    finally:
        local.close()
    assert k.value(f"import os; [os.environ.get(k) for k in {NOTEBOOK_VARS}]") == expected
    shown = "echo " + " ".join(f"${v}" for v in NOTEBOOK_VARS)
    line = "xterm-color 1 1 1 cat cat\n"
    assert k.ok(f"!{shown}").text() == line
    assert k.ok(f"%%bash\n{shown}").text() == line
    assert k.ok("%%node\nconsole.log(1, {a: 'b'})").text() == "1 { a: 'b' }\n"
