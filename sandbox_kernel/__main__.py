"""`python -m sandbox_kernel -f CONNECTION_FILE`: launch the sandbox kernel."""

from .kernel.app import main

if __name__ == "__main__":
    main()
