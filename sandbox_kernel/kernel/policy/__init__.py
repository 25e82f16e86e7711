"""The untrusted-output policy: what a sandbox may show in the user's browser.

Pure (no Jupyter imports), so every rule is unit-tested without a kernel. The kernel
calls four things: `OutputPolicy.clean(data, metadata)` for every bundle, `notice_line`
for the one visible line about what was removed, `clean_text` for plain text fields, and
`OutputBudget` / `History` for the per-cell cap and the bounded history.
"""

from .budget import OutputBudget
from .canonical import clean_text
from .core import CleanOutput, Note, OutputPolicy, notice_line
from .history import History

__all__ = ["CleanOutput", "History", "Note", "OutputBudget", "OutputPolicy", "clean_text",
           "notice_line"]
