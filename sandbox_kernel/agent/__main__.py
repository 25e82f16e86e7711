"""Entry point of the container's main process: ``python -m sandbox_kernel.agent``."""

from .supervisor import main

main()
