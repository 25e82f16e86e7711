"""Session-layer latency, side by side with `docker exec` as the reference, in one run.

    .venv/bin/python benchmarks/session.py [--quick]

Prints median and p95 (ms) for: session create until ready (cold, and claimed from the warm
pool), execute_command('true'), the agent round trip of a trivial Python statement (through
the async core the kernel awaits, through the library's sync facade, and with the agent
as a local process, without Docker), and `docker exec` of the same work. Writes
benchmarks/results/session.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import time
from collections.abc import Callable
from pathlib import Path

from _stats import summarize, timed

from sandbox_kernel.sandbox import Limits, SandboxManager
from sandbox_kernel.sandbox.docker_backend import DockerBackend
from sandbox_kernel.sandbox.local_backend import LocalBackend
from sandbox_kernel.sandbox.sync import Session

RESULTS = Path(__file__).parent / "results"


def agent_roundtrip(s: Session, n: int) -> dict[str, float]:
    """A cell through the async core, on its loop, as the kernel awaits it: the agent's
    round trip without the sync facade's two thread hand-offs (a row of its own)."""
    async def measure() -> list[float]:
        samples = []
        for i in range(n + 5):
            t = time.perf_counter()
            run = await s.core.run("pass", store_history=False)
            async for _ in run.events():
                pass
            if i >= 5:
                samples.append((time.perf_counter() - t) * 1000)
        return samples

    return summarize(asyncio.run_coroutine_threadsafe(measure(), s.loop).result(120))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="fewer repetitions")
    k = 0.3 if ap.parse_args().quick else 1.0
    rows: dict[str, dict[str, float]] = {}
    backend = DockerBackend()

    with SandboxManager(cleanup_interval=0, backend=backend) as m:
        def cold() -> None:
            m.destroy_session(m.create_session())

        rows["create (cold)"] = timed(cold, int(20 * k) or 3)

    with SandboxManager(cleanup_interval=0, backend=backend, pool_size=1) as m:
        pooled: list[float] = []
        for _ in range(int(15 * k) or 3):
            m.pool.fill_once()
            time.sleep(1.0)  # a warm sandbox has been waiting: its agent is up by now
            t = time.perf_counter()
            sid = m.create_session()
            pooled.append((time.perf_counter() - t) * 1000)
            m.destroy_session(sid)
        rows["create (pool)"] = summarize(pooled)

    with SandboxManager(cleanup_interval=0, backend=backend, limits=Limits(pids=64)) as m:
        s = m.open_session()
        rows["execute_command('true')"] = timed(lambda: s.execute_command("true"),
                                                  int(300 * k))
        rows["agent: python 'pass'"] = agent_roundtrip(s, int(500 * k))
        rows["agent: python 'pass' (sync facade)"] = timed(
            lambda: s.run("pass", lambda f: None, store_history=False).wait(), int(500 * k))
        def docker_exec(argv: list[str]) -> Callable[[], object]:
            """The Engine API's exec, as `docker exec` makes it: create, start attached,
            read to the end, inspect the exit code."""
            return lambda: backend.exec_in(s.container_id, argv)

        rows["docker exec true"] = timed(docker_exec(["true"]), int(40 * k) or 5)
        rows["docker exec python3 -c pass"] = timed(
            docker_exec(["python3", "-c", "pass"]), int(20 * k) or 5)

    # The same agent as a host process (the fast tier's backend): what Docker's relay adds.
    with SandboxManager(cleanup_interval=0, backend=LocalBackend(), limits=Limits(pids=64),
                        reap_on_start=False) as m:
        rows["agent: python 'pass' (local process, no Docker)"] = agent_roundtrip(
            m.open_session(), int(500 * k))

    ratio_cmd = rows["docker exec true"]["median_ms"] / rows["execute_command('true')"]["median_ms"]
    ratio_py = (rows["docker exec python3 -c pass"]["median_ms"]
                / rows["agent: python 'pass'"]["median_ms"])
    width = max(len(name) for name in rows)
    print(f"{'':<{width}}  {'median ms':>10}  {'p95 ms':>9}")
    for name, r in rows.items():
        print(f"{name:<{width}}  {r['median_ms']:>10.3f}  {r['p95_ms']:>9.3f}")
    print(f"\ndocker exec / execute_command: {ratio_cmd:.0f}x slower per call")
    print(f"docker exec python / agent python: {ratio_py:.0f}x slower per call")
    targets = {
        "create (cold) <= 400 ms": rows["create (cold)"]["median_ms"] <= 400,
        "create (pool) <= 50 ms": rows["create (pool)"]["median_ms"] <= 50,
        "agent python round trip <= 1 ms": rows["agent: python 'pass'"]["median_ms"] <= 1.0,
        "agent python >= 50x faster than docker exec": ratio_py >= 50,
    }
    for name, met in targets.items():
        print(f"{'met ' if met else 'MISS'}  {name}")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "session.json").write_text(json.dumps({
        "machine": {"cpus": __import__("os").cpu_count(), "platform": platform.platform()},
        "rows": rows, "ratios": {"docker_exec_vs_execute_command": ratio_cmd,
                                 "docker_exec_python_vs_agent_python": ratio_py},
        "targets": targets}, indent=2))
    print(f"\nwrote {RESULTS / 'session.json'}")


if __name__ == "__main__":
    main()
