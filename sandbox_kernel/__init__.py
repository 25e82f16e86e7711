"""sandbox-kernel: a Jupyter kernel that runs every cell in a hardened Docker sandbox."""

__version__ = "0.1.0"
