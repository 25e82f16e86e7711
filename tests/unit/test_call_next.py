"""Call.next: a frame, or SandboxTimeout at the deadline, without a task per frame."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import pytest

from sandbox_kernel.errors import SandboxTimeout
from sandbox_kernel.sandbox.channel import Call, Channel


def a_call() -> Call:
    return Call(cast(Channel, None), 7, "run")


def test_a_waiting_frame_a_late_frame_and_a_deadline() -> None:
    async def go() -> list[Any]:
        call = a_call()
        await call.queue.put({"id": 7, "type": "stream"})
        got = [await call.next(0.5)]
        asyncio.get_running_loop().call_later(0.05, call.queue.put_nowait,
                                              {"id": 7, "type": "done"})
        got.append(await call.next(5))
        with pytest.raises(SandboxTimeout, match=r"within 0\.05 s"):
            await call.next(0.05)
        got.append(call.final)
        return got

    stream, done, final = asyncio.run(go())
    assert stream["type"] == "stream" and done["type"] == "done" and final is done


def test_a_cancel_from_outside_is_not_taken_for_the_deadline() -> None:
    async def go() -> None:
        task = asyncio.ensure_future(a_call().next(30))
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(go())


def test_the_deadline_leaves_the_task_usable() -> None:
    async def go() -> str:
        call = a_call()
        with pytest.raises(SandboxTimeout):
            await call.next(0.01)
        await asyncio.sleep(0.01)  # the task was not left cancelled
        await call.queue.put({"id": 7, "type": "stream"})
        return str((await call.next(1))["type"])

    assert asyncio.run(go()) == "stream"
