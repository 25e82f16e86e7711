"""Twenty kernels started at the same moment: each gets its own sandbox, answers, and
leaves nothing behind when shut down (the same, also concurrently).

The kernels' exit codes are printed, not asserted: on a loaded 2-core machine a few kernels
take longer than jupyter_client's graceful window (half of shutdown_wait_time) to remove
their sandbox and get SIGTERM (-15); their containers go all the same (the agent sees EOF).

The kernels use IPC transport: with TCP, jupyter_client picks each kernel's ports by binding
and releasing them, and twenty clients connecting at once can take such a port as their own
ephemeral port before its kernel binds it ("Address already in use"), a client-side race.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from jupyter_core.utils import ensure_event_loop
from kernel.conftest import KernelHandle, containers_of, wait_until

pytestmark = pytest.mark.docker

N = 20


def test_twenty_kernels_at_once() -> None:
    all_up = threading.Barrier(N + 1)
    done = threading.Barrier(N + 1)
    t0 = time.monotonic()

    def life() -> dict[str, Any]:
        """One kernel's whole life in one thread (jupyter_client's loop is per thread)."""
        h: KernelHandle | None = None
        seen: dict[str, Any] = {}
        try:
            h = KernelHandle("sandbox", transport="ipc")
            answer = h.value("__import__('socket').gethostname(), 6 * 7")
            seen.update(pid=h.pid, answer=answer, answered_at=time.monotonic() - t0,
                        containers=[(c.id, c.name) for c in containers_of(h.pid)])
            all_up.wait(timeout=240)  # every kernel and sandbox exists at this moment
            done.wait(timeout=240)
            return seen
        except BaseException:
            all_up.abort()
            done.abort()
            raise
        finally:
            if h is not None:
                process = h.km.provisioner.process  # type: ignore[union-attr]
                h.close()
                seen["exit_code"] = process.poll()
            ensure_event_loop().close()

    with ThreadPoolExecutor(N) as pool:
        futures = [pool.submit(life) for _ in range(N)]
        all_up.wait(timeout=240)
        everyone = time.monotonic() - t0
        done.wait(timeout=60)
        t1 = time.monotonic()
        lives = [f.result(timeout=240) for f in futures]
    pids = {life_["pid"] for life_ in lives}
    gone = wait_until(lambda: not any(containers_of(p) for p in pids), 15)
    print(f"\n{N} kernels: all had answered after {everyone:.1f} s (first "
          f"{min(x['answered_at'] for x in lives):.1f} s); shut down and containers gone "
          f"{time.monotonic() - t1:.1f} s later")
    assert [x["answer"] for x in lives] == ["('sandbox', 42)"] * N
    assert [len(x["containers"]) for x in lives] == [1] * N, lives
    assert len({x["containers"][0][0] for x in lives}) == N  # ids
    assert len({x["containers"][0][1] for x in lives}) == N  # names
    assert len(pids) == N
    assert gone
    print("exit codes", [x["exit_code"] for x in lives])
