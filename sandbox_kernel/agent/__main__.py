"""Entry point of the container's main process: ``python -m sandbox_kernel.agent``."""

from .agent import Agent
from .hostlink import log
from .loop import Loop
from .privilege import become_agent, become_reaper


async def _serve(loop: Loop) -> None:
    ident = become_agent()
    become_reaper()
    await Agent(loop, ident).serve()


loop = Loop(log)
loop.run(_serve(loop))
