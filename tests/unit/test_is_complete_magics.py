"""is_complete of cell magics answers as ipykernel does (fast tier): compared with IPython's
own check_complete, which ipykernel uses, on the same cells."""

from __future__ import annotations

import pytest
from IPython.core.inputtransformer2 import TransformerManager

from sandbox_kernel.kernel.introspection import cell_magic_status

CELLS = ["%%node", "%%node\n", "%%node\nconsole.log(1)", "%%node\nconsole.log(1)\n",
         "%%node\nconst a = 1;\nconsole.log(a)\n\n", "%%bash\necho hi\n\n", "%%bash\necho hi",
         "%%bash\n  echo \\\n", "\n%%timeit\nx = 1\n\n", "%%node\n  x\n", "%%node\nx\n  \n",
         "%%sh\n\n", "%%python\nprint(1)\n"]


@pytest.mark.parametrize("cell", CELLS)
def test_cell_magics_like_ipython(cell: str) -> None:
    status, indent = TransformerManager().check_complete(cell)
    expected = {"status": status, **({"indent": " " * indent} if status == "incomplete"
                                     else {})}
    assert cell_magic_status(cell) == expected


@pytest.mark.parametrize("cell", ["1 + 1", "for i in x:", "%time 1", "  \n", ""])
def test_other_cells_are_left_to_the_sandbox(cell: str) -> None:
    assert cell_magic_status(cell) is None
