"""What a cell's verdict says to the user: the error a lost or stopped cell ends with, and
the hints that name a limit that would have been enough (within the ceilings)."""

from __future__ import annotations

from ..sandbox.spec import CellResult, Limits
from ..sandbox.units import format_size, human_size

#: The error a cell ends with when the agent's verdict came without the worker's traceback.
VERDICT_ERRORS = {"timeout": "TimeoutError", "cpu_time": "TimeoutError",
                  "interrupted": "KeyboardInterrupt"}


def oom_text(limits: Limits, ceilings: Limits) -> str:
    """The MemoryError text, with a raised limit that stays within the ceiling."""
    mem = human_size(limits.memory)
    bigger = format_size(min(limits.memory * 2, ceilings.memory))
    return (f"cell exceeded the {mem} memory limit (OOM); interpreter restarted, /sandbox "
            f"files kept. Raise it with: %sandbox limits memory={bigger}")


def raise_hint(limits: Limits, ceilings: Limits, dropped: int) -> str:
    """A value of the output limit that would have shown it all, within the ceiling."""
    needed = limits.output + dropped
    fits = min(ceilings.output, 1 << max(needed - 1, 1).bit_length())
    if fits >= needed:
        return f"raise with %sandbox limits output={format_size(fits)} to see it all"
    return (f"the administrator's ceiling of {human_size(ceilings.output)} is too "
            "small to show it all")


def truncation_text(limits: Limits, ceilings: Limits, dropped: int) -> str:
    """The notice after a command's output was cut at the output limit."""
    hint = raise_hint(limits, ceilings, dropped)
    return (f"\n[sandbox] output truncated after {human_size(limits.output)}: "
            f"{dropped:,} more characters were not shown ({hint})\n")


def lost_error(limits: Limits, ceilings: Limits, grace: float,
               result: CellResult) -> tuple[str, str]:
    """The error for a cell whose interpreter was killed."""
    lost = "its interpreter was restarted: variables were lost, /sandbox files kept"
    if result.verdict == "oom" and result.message:  # the whole sandbox was stopped
        bigger = format_size(min(limits.memory * 2, ceilings.memory))
        return "MemoryError", (f"cell exceeded the {human_size(limits.memory)} memory "
                               "limit and the whole sandbox was stopped (OOM): variables "
                               "and /sandbox files were lost. Raise it with: %sandbox "
                               f"limits memory={bigger}")
    if result.verdict == "oom":
        return "MemoryError", oom_text(limits, ceilings)
    if result.verdict == "timeout":
        if "replaced" in result.message:
            return "TimeoutError", result.message
        return "TimeoutError", (f"{result.message}; the cell ignored the interrupt and was "
                                f"killed, {lost}")
    if result.verdict == "cpu_time":
        return "TimeoutError", f"{result.message}; {lost}"
    if result.verdict == "interrupted":
        return "KeyboardInterrupt", (f"the cell ignored the interrupt for {grace:g} s "
                                     f"and was killed; {lost}")
    if result.message:
        return "SandboxError", f"{result.message}; {lost}"
    how = f" ({result.exit_signal})" if result.exit_signal else ""
    return "SandboxError", f"the interpreter crashed{how}; {lost}"

