"""ipykernel's own line magics, as far as they make sense in a sandbox.

ipykernel's shell adds %autosave, %clear, %connect_info, %less, %man, %more, %qtconsole
and %subshell to IPython's, and its app loads the storemagic extension (%store); notebooks
use some of them and `%lsmagic` lists them all.
Those that need the kernel process (its connection file, a qtconsole, its subshells)
say so as ipykernel says a failure, with a warning; the others behave as there.
"""

from __future__ import annotations

import warnings
from typing import Any


def _page_text(shell: Any, arg_s: str) -> str:
    """What %less shows: the file, syntax-highlighted if it is Python."""
    from IPython.core.error import UsageError
    from IPython.utils import openpy

    if not arg_s:
        raise UsageError("Missing filename.")
    if arg_s.endswith(".py"):
        return str(shell.pycolorize(openpy.read_py_file(arg_s, skip_encoding_cookie=False)))
    with open(arg_s) as f:
        return f.read()


def _autosave_text(arg_s: str) -> str:
    from IPython.core.error import UsageError

    try:
        interval = int(arg_s)
    except ValueError as e:
        raise UsageError(f"%autosave requires an integer, got {arg_s!r}") from e
    return f"Autosaving every {interval} seconds" if interval else "Autosave disabled"


def shell_of(magics: Any) -> Any:
    return magics.shell


def register(shell: Any) -> None:
    """Add the magics to the shell (stdlib and IPython only, as the rest of the worker)."""
    from IPython.core import page
    from IPython.core.magic import Magics, line_magic, magics_class

    @magics_class
    class KernelMagics(Magics):
        @line_magic
        def clear(self, arg_s: str) -> None:
            """Clear the terminal."""
            shell_of(self).system("clear")

        @line_magic
        def less(self, arg_s: str) -> None:
            """Show a file through the pager. Files ending in .py are syntax-highlighted."""
            page.page(_page_text(shell_of(self), arg_s))

        more: Any = line_magic("more")(less)  # type: ignore[arg-type]

        @line_magic
        def man(self, arg_s: str) -> None:
            """Find the man page for the given command and display in pager."""
            page.page(shell_of(self).getoutput(f"man {arg_s} | col -b", split=False))

        @line_magic
        def connect_info(self, arg_s: str) -> None:
            """Print information for connecting other clients to this kernel."""
            warnings.warn("Could not get connection info: the kernel's connection file is "
                          "on the host, outside the sandbox", stacklevel=2)

        @line_magic
        def qtconsole(self, arg_s: str) -> None:
            """Open a qtconsole connected to this kernel."""
            warnings.warn("Could not start qtconsole: the sandbox cannot start programs "
                          "on the host", stacklevel=2)

        @line_magic
        def autosave(self, arg_s: str) -> None:
            """Set the autosave interval in the notebook (in seconds); 0 disables it."""
            print(_autosave_text(arg_s))

        @line_magic
        def subshell(self, arg_s: str) -> None:
            """List all current subshells."""
            print("Kernel does not support subshells")

    shell.register_magics(KernelMagics)
    shell.extension_manager.load_extension("storemagic")  # %store: ipykernel loads it too
