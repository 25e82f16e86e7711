"""An interrupt's traceback ends in the cell's code, not in the worker's own frames.

SIGINT lands wherever the worker is: in its stream write, in a standard-library call
that write made (Event.is_set), or in IPython's capture of the cell's output. Those
trailing frames are cut; the user's own calls into the standard library are kept, as a
local kernel shows them.
"""

from __future__ import annotations

import os
import sys
from types import TracebackType

from sandbox_kernel.agent.pyshell import AGENT_DIR, STDLIB_DIR, own_dirs, without_agent_frames


def chain(*files: str) -> TracebackType:
    """A traceback through one frame per file, innermost last, ending in an interrupt."""
    ns: dict[str, object] = {}
    callee = "raise KeyboardInterrupt"
    for n, name in enumerate(reversed(files)):
        src = f"def f{n}():\n    {callee}\n"
        exec(compile(src, name, "exec"), ns)  # frames with chosen file names
        callee = f"f{n}()"
    try:
        ns[f"f{len(files) - 1}"]()  # type: ignore[operator]
    except KeyboardInterrupt:
        tb = sys.exc_info()[2]
        assert tb is not None and tb.tb_next is not None
        return tb.tb_next  # without this test's own frame
    raise AssertionError("no interrupt")


def files(tb: TracebackType | None) -> list[str]:
    out = []
    while tb is not None:
        out.append(tb.tb_frame.f_code.co_filename)
        tb = tb.tb_next
    return out


CELL = "/tmp/ipykernel_1/1234.py"
WRITE, KICK = AGENT_DIR + "pystreams.py", AGENT_DIR + "pystreams.py"
THREADING, LOGGING = STDLIB_DIR + "threading.py", STDLIB_DIR + "logging/__init__.py"


def test_the_worker_frames_and_what_they_called_are_cut() -> None:
    tb = chain(CELL, LOGGING, WRITE, KICK, THREADING)
    assert files(without_agent_frames(tb)) == [CELL, LOGGING]


def test_a_cell_interrupted_in_the_standard_library_keeps_those_frames() -> None:
    tb = chain(CELL, THREADING)
    assert files(without_agent_frames(tb)) == [CELL, THREADING]


def test_only_frames_after_the_last_cell_frame_are_cut() -> None:
    tb = chain(CELL, WRITE, CELL, THREADING)
    assert files(without_agent_frames(tb)) == [CELL, WRITE, CELL, THREADING]


def test_ipython_output_capture_before_the_handler_is_cut() -> None:
    """IPython wraps sys.stdout.write to keep each cell's outputs; SIGINT can land there."""
    shell = next(d for d in own_dirs() if d.endswith("IPython" + os.sep)) + "core/shell.py"
    traitlets = next(d for d in own_dirs() if "traitlets" in d) + "traitlets.py"
    tb = chain(CELL, shell, traitlets, AGENT_DIR + "pystreams.py")
    assert files(without_agent_frames(tb)) == [CELL]
