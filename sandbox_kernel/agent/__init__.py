"""The in-container agent: standard library only (IPython in the Python worker)."""
