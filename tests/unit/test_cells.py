"""The cell grammar: what runs in the sandbox, in which language, and what runs on the host."""

from __future__ import annotations

import pytest

from sandbox_kernel.errors import UsageError
from sandbox_kernel.kernel.cells import Code, HostCommand, parse_cell


@pytest.mark.parametrize("code, lang, body", [
    ("print(1)", "python", "print(1)"),
    ("", "python", ""),
    ("%%node\nconsole.log(1)", "node", "console.log(1)"),
    ("  %%node\nx", "node", "x"),
    ("%%bash\necho hi", "bash", "echo hi"),
    ("%%sh\necho hi", "bash", "echo hi"),
    ("%%python\nx = 1", "python", "x = 1"),
    ("%%python3\nx = 1", "python", "x = 1"),
    ("%%timeit\nx = 1", "python", "%%timeit\nx = 1"),  # an IPython cell magic: the sandbox's
    ("%timeit x\n%sandboxes", "python", "%timeit x\n%sandboxes"),  # not our magic
    ("x = '%sandbox help'", "python", "x = '%sandbox help'"),
])
def test_code_for_an_interpreter(code: str, lang: str, body: str) -> None:
    assert parse_cell(code) == Code(lang, body)


def test_the_kernel_language_is_the_default() -> None:
    assert parse_cell("1 + 1", "node") == Code("node", "1 + 1")
    assert parse_cell("%%python\n1", "node") == Code("python", "1")


def test_host_commands() -> None:
    assert parse_cell("%sandbox limits memory=1g") == (
        HostCommand(("limits", "memory=1g"), None, "%sandbox limits memory=1g"),)
    cmds = parse_cell("# set up\n%sandbox status\n\n%sandbox health --watch")
    assert isinstance(cmds, tuple)
    assert [c.argv for c in cmds] == [("status",), ("health", "--watch")]
    assert parse_cell("%sandbox") == (HostCommand((), None, "%sandbox"),)
    (w,) = parse_cell("%%sandbox write a.txt\nline 1\nline 2")  # type: ignore[misc]
    assert (w.argv, w.body) == (("write", "a.txt"), "line 1\nline 2")


@pytest.mark.parametrize("code, message", [
    ("%sandbox status\nprint(1)", "cell of their own"),
    ("x = 1\n%sandbox limits", "cell of their own"),
    ("%%node extra\nx", "takes no arguments"),
    ("%sandbox files ls 'unclosed", "cannot parse"),
])
def test_refusals_are_one_line_usage_errors(code: str, message: str) -> None:
    with pytest.raises(UsageError, match=message) as info:
        parse_cell(code)
    assert "\n" not in str(info.value)


def test_quoting_is_shell_like_but_no_shell_runs() -> None:
    (c,) = parse_cell("%sandbox env 'A=two words' B=$(reboot)")  # type: ignore[misc]
    assert c.argv == ("env", "A=two words", "B=$(reboot)")
