"""`python -m sandbox_kernel -f CONNECTION_FILE`: launch the sandbox kernel."""

import sys

from .kernel.early import EarlyStart

if __name__ == "__main__":
    early = EarlyStart(sys.argv[1:])  # the sandbox starts while ipykernel is imported
    from .kernel.app import main

    main(early=early)
