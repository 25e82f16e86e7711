"""Entry point of the container's main process: ``python -m sandbox_kernel.agent``."""

import sys

# The agent never speaks TLS: without the module asyncio skips it, and the agent of every
# sandbox holds OpenSSL's start-up memory (about 2 MB) less.
sys.modules.setdefault("ssl", None)  # type: ignore[arg-type]

import asyncio  # noqa: E402

from .agent import Agent  # noqa: E402
from .privilege import become_agent, become_reaper  # noqa: E402


async def _serve() -> None:
    ident = become_agent()
    become_reaper()
    await Agent(ident).serve()


asyncio.run(_serve())
