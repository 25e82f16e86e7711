"""Fault injection against real kernels (tests/kernel's KernelHandle and ``start_kernel``).

``start_kernel`` shuts every kernel it started down after the test and checks that none of
their containers is left; tests/conftest.py checks the same, and for stray kernel
processes, after every module.
"""

from __future__ import annotations

from kernel.conftest import start_kernel

__all__ = ["start_kernel"]
