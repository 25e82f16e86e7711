"""The agent's event loop (agent/loop.py): asyncio's call order, timers, tasks, signals."""

from __future__ import annotations

import os
import signal
import time

from sandbox_kernel.agent.loop import Event, Loop, sleep


def _run(body: object) -> tuple[Loop, list[str]]:
    logged: list[str] = []
    loop = Loop(logged.append)

    async def main() -> None:
        await body(loop)  # type: ignore[operator]

    loop.run(main())
    return loop, logged


def test_ready_callbacks_run_in_order_and_what_they_schedule_runs_next_turn() -> None:
    order: list[str] = []

    async def body(loop: Loop) -> None:
        def first() -> None:
            order.append("first")
            loop.call_soon(order.append, "scheduled by first")

        loop.call_soon(first)
        loop.call_soon(order.append, "second")
        await sleep(0.01)

    _run(body)
    assert order == ["first", "second", "scheduled by first"]


def test_timers_fire_in_time_order_and_a_cancelled_one_never() -> None:
    order: list[str] = []

    async def body(loop: Loop) -> None:
        loop.call_later(0.03, order.append, "late")
        loop.call_later(0.01, order.append, "early")
        loop.call_later(0.02, order.append, "cancelled").cancel()
        await sleep(0.05)

    _run(body)
    assert order == ["early", "late"]


def test_many_cancelled_timers_are_purged_from_the_heap() -> None:
    async def body(loop: Loop) -> None:
        for _ in range(500):
            loop.call_later(3600, print).cancel()
        await sleep(0)

    loop, _ = _run(body)
    assert len(loop._timers) < 100 and loop.cancelled_timers < 100


def test_a_reader_removed_earlier_in_the_same_turn_does_not_run() -> None:
    got: list[str] = []
    r1, w1 = os.pipe()
    r2, w2 = os.pipe()
    try:
        async def body(loop: Loop) -> None:
            def on_first() -> None:
                got.append("first")
                loop.remove_reader(r1)
                loop.remove_reader(r2)

            def on_second() -> None:
                got.append("second")

            loop.add_reader(r1, on_first)
            loop.add_reader(r2, on_second)
            os.write(w1, b"x")
            os.write(w2, b"x")
            await sleep(0.02)

        _run(body)
        assert len(got) == 1  # whichever ran first removed the other before it could run
    finally:
        for fd in (r1, w1, r2, w2):
            os.close(fd)


def test_reader_and_writer_on_one_fd_are_independent() -> None:
    got: list[str] = []
    a, b = os.pipe()
    try:
        async def body(loop: Loop) -> None:
            loop.add_writer(b, lambda: (got.append("writable"), loop.remove_writer(b)))
            loop.add_reader(a, lambda: (got.append(os.read(a, 1).decode()),
                                        loop.remove_reader(a)))
            await sleep(0.01)
            os.write(b, b"r")
            await sleep(0.01)
            assert not loop.remove_reader(a) and not loop.remove_writer(b)

        _run(body)
        assert got == ["writable", "r"]
    finally:
        os.close(a)
        os.close(b)


def test_tasks_sleep_and_wait_for_events_and_report_when_done() -> None:
    order: list[str] = []

    async def body(loop: Loop) -> None:
        ready = Event()

        async def waiter() -> None:
            await ready.wait()
            order.append("woken")

        task = loop.create_task(waiter())
        task.add_done_callback(lambda t: order.append(f"done {t.done()}"))
        await sleep(0.01)
        order.append("setting")
        ready.set()
        await sleep(0.01)
        await ready.wait()  # already set: no wait
        ready.clear()
        assert not ready.is_set()

    _run(body)
    assert order == ["setting", "woken", "done True"]


def test_a_failing_callback_or_task_is_logged_and_the_loop_goes_on() -> None:
    after: list[str] = []

    async def body(loop: Loop) -> None:
        async def broken() -> None:
            raise ValueError("task boom")

        loop.call_soon(lambda: 1 / 0)
        loop.create_task(broken())
        await sleep(0.01)
        after.append("still running")

    _, logged = _run(body)
    assert after == ["still running"]
    assert any("ZeroDivisionError" in line for line in logged)
    assert any("task boom" in line and "broken" in line for line in logged)


def test_a_signal_handler_runs_in_the_loop() -> None:
    got: list[int] = []
    before = signal.getsignal(signal.SIGUSR1)
    try:
        async def body(loop: Loop) -> None:
            loop.add_signal_handler(signal.SIGUSR1, got.append, 1)
            os.kill(os.getpid(), signal.SIGUSR1)
            deadline = time.monotonic() + 2
            while not got and time.monotonic() < deadline:
                await sleep(0.005)

        _run(body)
        assert got == [1]
        assert signal.set_wakeup_fd(-1) == -1  # the loop gave its wakeup fd back
    finally:
        signal.signal(signal.SIGUSR1, before)


def test_the_agent_process_loads_no_asyncio_ssl_random_or_dataclasses() -> None:
    """The modules the agent keeps out (each costs memory in every sandbox), imported the
    way the container's entrypoint starts it (-E -s -S). dataclasses brings inspect (and ast,
    dis, tokenize); shutil is imported only by a delete."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    probe = ("import sys, sandbox_kernel.agent.agent, sandbox_kernel.agent.loop\n"
             "print(' '.join(sorted({'asyncio', 'ssl', 'random', 'concurrent', 'dataclasses',"
             " 'inspect', 'ast', 'dis', 'tokenize', 'shutil'}"
             " & {m.split('.')[0] for m in sys.modules})))")
    out = subprocess.run([sys.executable, "-E", "-s", "-S", "-c", probe], cwd=root,
                         capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == ""


def test_a_task_nobody_holds_still_finishes() -> None:
    import gc

    finished: list[str] = []

    async def body(loop: Loop) -> None:
        ready = Event()

        async def unheld() -> None:
            await sleep(0.01)
            await ready.wait()
            finished.append("finished")

        loop.create_task(unheld())  # no reference kept, as the agent's callers do
        await sleep(0.005)
        gc.collect()
        await sleep(0.02)
        gc.collect()
        ready.set()
        await sleep(0.01)

    _run(body)
    assert finished == ["finished"]
