"""`python -m sandbox_kernel -f CONNECTION_FILE`: launch the sandbox kernel."""

import sys

from .kernel.early import EarlyStart

if __name__ == "__main__":
    early = EarlyStart(sys.argv[1:])  # the sandbox starts while the kernel is imported
    from .kernel.early_sockets import bind_early

    sockets = bind_early(sys.argv[1:])  # and the client connects meanwhile
    from .kernel.app import main

    main(early=early, sockets=sockets)
