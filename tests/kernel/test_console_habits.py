"""What a terminal user relies on, through jupyter_client: is_complete of cell magics,
`exit`/`quit` payloads, interrupt tracebacks that end in the user's own code."""

from __future__ import annotations

import re

import pytest

from .conftest import KernelHandle, Msg

pytestmark = pytest.mark.docker

ANSI = re.compile(r"\x1b\[[0-9;]*m")


@pytest.mark.parametrize("magic", ["%%node", "%%bash", "%%sh", "%%python"])
def test_a_cell_magic_is_incomplete_until_a_blank_line(k: KernelHandle, magic: str) -> None:
    for code in (magic, f"{magic}\necho 1", f"{magic}\necho 1\n"):
        assert k.request("is_complete", code) == {"status": "incomplete", "indent": ""}, code
    assert k.request("is_complete", f"{magic}\necho 1\n\n") == {"status": "complete"}
    assert k.request("is_complete", f"{magic}\n  echo 1\n")["indent"] == "  "


def test_python_is_complete_still_comes_from_the_sandbox(k: KernelHandle) -> None:
    assert k.request("is_complete", "for i in range(3):")["status"] == "incomplete"
    assert k.request("is_complete", "1 + 1")["status"] == "complete"


@pytest.mark.parametrize(("code", "keep"), [("exit", False), ("quit", False),
                                            ("exit()", False), ("quit()", False),
                                            ("exit(keep_kernel=True)", True)])
def test_exit_and_quit_send_the_ask_exit_payload(k: KernelHandle, code: str,
                                                 keep: bool) -> None:
    r = k.ok(code)
    assert r.reply["payload"] == [{"source": "ask_exit", "keepkernel": keep}]
    assert r.text() == ""  # no "ignored" message: the frontend decides
    assert k.value("6 * 7") == "42"  # the kernel and the sandbox are still there


def _interrupted(k: KernelHandle, code: str) -> dict[str, object]:
    sent: list[float] = []

    def on_msg(m: Msg) -> None:
        if not sent and m.type == "stream" and "started" in m.content["text"]:
            sent.append(m.t)
            k.km.interrupt_kernel()

    r = k.execute(code, on_msg=on_msg, timeout=60)
    assert sent, "the cell never started"
    [err] = r.errors
    assert err["ename"] == "KeyboardInterrupt"
    return err


@pytest.mark.parametrize("code", [
    "import time\nprint('started', flush=True)\ntime.sleep(60)",
    "print('started', flush=True)\nwhile True:\n    print('x' * 50)",
])
def test_an_interrupt_traceback_ends_in_the_cell(k: KernelHandle, code: str) -> None:
    err = _interrupted(k, code)
    text = ANSI.sub("", "\n".join(err["traceback"]))  # type: ignore[arg-type]
    assert "sandbox_kernel" not in text and "/opt/" not in text, text
    assert "Cell In[" in text, text
    last = text.rstrip().splitlines()[-1]
    assert last.startswith("KeyboardInterrupt"), text
