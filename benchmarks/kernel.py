"""The sandbox kernel side by side with a local ipykernel, same client code, one run.

    .venv/bin/python benchmarks/kernel.py [--quick]

Measures execute-to-idle round trips (`pass`, `print('x')`, 1 MiB of output, a `%%node`
cell), kernel start to first result (cold, and with warm sandboxes from
`sandbox-kernel pool`; each alternated with a local ipykernel's start beside the same
background), and the cost of the live resource monitor. Prints medians, p95 and
ratios; writes benchmarks/results/kernel.json. Reports only: targets never fail a build.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import queue
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _stats import summarize
from jupyter_client.manager import KernelManager

RESULTS = Path(__file__).parent / "results"
ONE_MIB = "import sys; sys.stdout.write('x' * (1 << 20))"
TEN_MIB = "import sys; sys.stdout.write('x' * (10 << 20))"


class Kernel:
    """A started kernel and a client, with a round-trip timer that waits for idle."""

    def __init__(self, name: str, extra: list[str] | None = None) -> None:
        self.km = KernelManager(kernel_name=name)
        self.km.start_kernel(extra_arguments=extra or [])
        self.kc = self.km.client()
        self.kc.start_channels()
        self.kc.wait_for_ready(timeout=120)

    def roundtrip(self, code: str) -> float:
        """Milliseconds from execute_request to the kernel's idle status for it."""
        t = time.perf_counter()
        msg_id = self.kc.execute(code)
        while True:
            try:
                msg = self.kc.get_iopub_msg(timeout=60)
            except queue.Empty:
                raise TimeoutError(f"no idle for {code[:30]!r}") from None
            if (msg["parent_header"].get("msg_id") == msg_id and msg["msg_type"] == "status"
                    and msg["content"]["execution_state"] == "idle"):
                break
        elapsed = (time.perf_counter() - t) * 1000
        self.kc.get_shell_msg(timeout=60)
        return elapsed

    def close(self) -> None:
        self.kc.stop_channels()
        self.km.shutdown_kernel(now=False)


def first_result(name: str, extra: list[str] | None = None) -> float:
    """Start a kernel and run `1` until its execute_result arrives: milliseconds."""
    t = time.perf_counter()
    k = Kernel(name, extra)
    try:
        k.kc.execute_interactive("1", timeout=120, output_hook=lambda m: None)
        return (time.perf_counter() - t) * 1000
    finally:
        k.close()


def wait_for_warm_pool(age_s: float = 3.0, timeout: float = 60.0) -> None:
    """Wait until the keeper has a pooled sandbox old enough for its interpreter to be up."""
    from sandbox_kernel.sandbox.backend import LABEL_CREATED, LABEL_POOL
    from sandbox_kernel.sandbox.docker_backend import DockerBackend
    from sandbox_kernel.sandbox.reaper import POOL_PREFIX

    backend = DockerBackend()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for r in backend.list_owned(all_states=False):
            created = float(r.labels.get(LABEL_CREATED, "0") or 0)
            if (LABEL_POOL in r.labels and r.name.startswith(POOL_PREFIX)
                    and time.time() - created > age_s):
                return
        time.sleep(0.2)
    raise TimeoutError("the pool keeper has no warm sandbox")


def alternate(n: int, *starts: Callable[[], float]) -> list[list[float]]:
    """n rounds of each start in turn, so that drift of the machine hits all alike."""
    samples: list[list[float]] = [[] for _ in starts]
    for _ in range(n):
        for into, start in zip(samples, starts, strict=True):
            into.append(start())
    return samples


def measure_starts(n: int) -> dict[str, dict[str, float]]:
    """Start to first result: ipykernel alternated with a cold sandbox kernel, then with a
    pooled one while the pool's keeper runs (it refills in the background, as in use)."""
    ipy_cold, cold = alternate(n, lambda: first_result("python3"),
                               lambda: first_result("sandbox"))
    keeper = subprocess.Popen([sys.executable, "-m", "sandbox_kernel.cli", "pool", "--size", "2"],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert keeper.stdout is not None
        keeper.stdout.readline()  # "keeping N warm sandboxes ..."

        def pooled() -> float:
            wait_for_warm_pool()
            return first_result("sandbox")

        def local() -> float:
            wait_for_warm_pool()  # the same background as the pooled start
            return first_result("python3")

        ipy_pool, pool = alternate(n, local, pooled)
    finally:
        keeper.terminate()
        keeper.wait(60)
    return {"ipykernel": summarize(ipy_cold), "sandbox (cold)": summarize(cold),
            "ipykernel (pool running)": summarize(ipy_pool), "sandbox (pool)": summarize(pool)}


def bench_roundtrips(name: str, n: int, extra: list[str] | None = None) -> dict[str, Any]:
    k = Kernel(name, extra)
    try:
        out: dict[str, Any] = {}
        cases = {"pass": "pass", "print('x')": "print('x')", "1 MiB output": ONE_MIB,
                 "10 MiB output": TEN_MIB}
        if name.startswith("sandbox"):
            cases["%%node 1"] = "%%node\n1"
            k.roundtrip("%sandbox limits output=64m")  # the default cap (4 MB) cuts 10 MiB
        for label, code in cases.items():
            for _ in range(5):
                k.roundtrip(code)
            reps = max(5, n // 10) if "MiB" in label else n
            out[label] = summarize([k.roundtrip(code) for _ in range(reps)])
        return out
    finally:
        k.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true")
    quick = ap.parse_args().quick
    n = 60 if quick else 200
    starts = 3 if quick else 7
    rows: dict[str, dict[str, Any]] = {}

    rows["ipykernel"] = bench_roundtrips("python3", n)
    rows["sandbox"] = bench_roundtrips("sandbox", n)
    rows["sandbox, monitor on"] = bench_roundtrips(
        "sandbox", n, ["--Sandbox.monitor_on_start=True"])
    starts_row = measure_starts(starts)

    def ratio(a: dict[str, float], b: dict[str, float]) -> float:
        return a["median_ms"] / b["median_ms"]

    ipy, sbx, mon = rows["ipykernel"], rows["sandbox"], rows["sandbox, monitor on"]
    ratios = {
        "pass: sandbox / ipykernel": ratio(sbx["pass"], ipy["pass"]),
        "print('x'): sandbox / ipykernel": ratio(sbx["print('x')"], ipy["print('x')"]),
        "1 MiB output: sandbox / ipykernel": ratio(sbx["1 MiB output"], ipy["1 MiB output"]),
        "10 MiB output: sandbox / ipykernel": ratio(sbx["10 MiB output"],
                                                    ipy["10 MiB output"]),
        "%%node / python cell (sandbox)": ratio(sbx["%%node 1"], sbx["pass"]),
        "start, cold: sandbox / ipykernel": ratio(starts_row["sandbox (cold)"],
                                                  starts_row["ipykernel"]),
        "start, pool: sandbox / ipykernel": ratio(starts_row["sandbox (pool)"],
                                                  starts_row["ipykernel (pool running)"]),
        "pass: monitor on / off": ratio(mon["pass"], sbx["pass"]),
    }
    targets = {
        "pass: sandbox / ipykernel": 1.15, "print('x'): sandbox / ipykernel": 1.2,
        "1 MiB output: sandbox / ipykernel": 1.3, "10 MiB output: sandbox / ipykernel": 1.2,
        "%%node / python cell (sandbox)": 1.2,
        "start, cold: sandbox / ipykernel": 1.1, "start, pool: sandbox / ipykernel": 1.0,
        "pass: monitor on / off": 1.1,
    }
    print(f"{'round trip (ms)':<22}" + "".join(f"{k:>22}" for k in rows))
    for label in sbx:
        cells = "".join(
            f"{r[label]['median_ms']:>12.2f} (p95 {r[label]['p95_ms']:>5.1f})" if label in r
            else f"{'-':>22}" for r in rows.values())
        print(f"{label:<22}{cells}")
    print(f"\n{'start to first result':<22}")
    for label, r in starts_row.items():
        print(f"  {label:<26}{r['median_ms']:>6.0f} ms (p95 {r['p95_ms']:.0f})")
    print()
    for label, value in ratios.items():
        met = value <= targets[label]
        print(f"{'met ' if met else 'MISS'}  {label:<36} {value:5.2f}x  (target <= "
              f"{targets[label]}x)")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "kernel.json").write_text(json.dumps({
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "roundtrips": rows, "starts": starts_row, "ratios": ratios, "targets": targets},
        indent=2))
    print(f"\nwrote {RESULTS / 'kernel.json'}")


if __name__ == "__main__":
    main()
