"""ipykernel's cell filenames and IPython's %%bash options (fast tier), checked against
the host's own ipykernel and cell grammar."""

from __future__ import annotations

import pytest
from ipykernel.compiler import get_file_name, murmur2_x86

from sandbox_kernel.agent.pycompile import SEED, cell_filename, murmur2
from sandbox_kernel.errors import UsageError
from sandbox_kernel.kernel.cells import Code, parse_cell

TEXTS = ["", "a", "ab", "abc", "abcd", "abcde", "print(1)\n", "é日本語 x" * 7, "x = 1\n" * 100]


@pytest.mark.parametrize("text", TEXTS)
def test_hash_and_filename_are_ipykernels(text: str) -> None:
    assert murmur2(text.encode("utf-8")) == murmur2_x86(text, SEED)
    assert cell_filename(text) == get_file_name(text)


def test_the_cell_name_variable_is_honoured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IPYKERNEL_CELL_NAME", "<fixed>")
    assert cell_filename("x") == "<fixed>" == get_file_name("x")


@pytest.mark.parametrize("first", ["%%bash --out o", "%%sh --err e", "%%bash --bg --proc p",
                                   "%%bash --no-raise-error"])
def test_bash_with_ipython_options_goes_to_ipython(first: str) -> None:
    code = f"{first}\necho hi\n"
    assert parse_cell(code, "python") == Code("python", code)
    with pytest.raises(UsageError, match="takes no arguments"):
        parse_cell(code, "node")  # a JavaScript kernel has no IPython to hand it to


def test_plain_bash_still_runs_as_a_shell_cell() -> None:
    assert parse_cell("%%bash\necho hi\n", "python") == Code("bash", "echo hi\n")
