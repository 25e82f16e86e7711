"""The README's library example, run exactly as printed there."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.docker

README = Path(__file__).resolve().parents[2] / "README.md"


def library_example() -> str:
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## Library and CLI"):]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, "no Python example under 'Library and CLI'"
    return match.group(1)


def test_the_readme_library_example_works_as_printed() -> None:
    proc = subprocess.run([sys.executable, "-c", library_example()], capture_output=True,
                          check=False,
                          text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert re.fullmatch(r"took \d+ ms", lines[0]), lines
    assert lines[1:] == ["0 42 False False", "hi", "healthy"], lines
