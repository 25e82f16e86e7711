"""What the kernel tells the frontend about its language (kernel_info's language_info)."""

from __future__ import annotations

from typing import Any


def language_info(language: str, python: str, node: str) -> dict[str, Any]:
    """kernel_info's language_info for the kernelspec's language."""
    if language == "node":
        return {"name": "javascript", "version": node, "mimetype": "application/javascript",
                "file_extension": ".js", "pygments_lexer": "javascript",
                "codemirror_mode": "javascript", "nbconvert_exporter": "javascript"}
    return {"name": "python", "version": python, "mimetype": "text/x-python",
            "file_extension": ".py", "pygments_lexer": "ipython3",
            "codemirror_mode": {"name": "ipython", "version": 3}, "nbconvert_exporter": "python"}
