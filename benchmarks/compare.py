"""sandbox-kernel against a local ipykernel and llm-sandbox's Docker backend, in one run.

    .venv/bin/pip install 'llm-sandbox[docker]'   # the peer, from PyPI (pip install -e '.[bench]')
    .venv/bin/python benchmarks/compare.py [--quick]

The same workloads go through (a) a local ipykernel (the floor: no isolation at all),
(b) this kernel, (c) llm-sandbox's SandboxSession on the same local image (no registry is
needed; its container runs `sleep infinity` instead of our agent): latency of a trivial
execution, whether state is kept between executions, 1 MiB of output, and session start.
Then density: memory per idle sandbox, and how long 10 and 30 sandboxes take to start at
once. Prints a table with ratios and writes benchmarks/results/compare.json.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import platform
import statistics
import subprocess
import time
from pathlib import Path
from typing import Any

from _stats import timed
from jupyter_client.manager import KernelManager

from sandbox_kernel.sandbox import DEFAULT_IMAGE, SandboxManager

RESULTS = Path(__file__).parent / "results"
ONE_MIB = "import sys; sys.stdout.write('x' * (1 << 20))"


class JupyterTarget:
    """A kernel driven through jupyter_client, exactly as a notebook frontend would."""

    def __init__(self, kernel_name: str) -> None:
        self.kernel_name = kernel_name
        t = time.perf_counter()
        self.km = KernelManager(kernel_name=kernel_name)
        self.km.start_kernel()
        self.kc = self.km.client()
        self.kc.start_channels()
        self.kc.wait_for_ready(timeout=120)
        self.kc.execute_interactive("1", timeout=120, output_hook=lambda m: None)
        self.start_ms = (time.perf_counter() - t) * 1000

    def run(self, code: str) -> str:
        out: list[str] = []

        def hook(msg: dict[str, Any]) -> None:
            if msg["msg_type"] == "stream":
                out.append(msg["content"]["text"])
            elif msg["msg_type"] == "execute_result":
                out.append(msg["content"]["data"].get("text/plain", ""))
            elif msg["msg_type"] == "error":
                out.append(msg["content"]["ename"])

        self.kc.execute_interactive(code, timeout=120, output_hook=hook)
        return "".join(out)

    def close(self) -> None:
        self.kc.stop_channels()
        self.km.shutdown_kernel(now=False)


class LLMSandboxTarget:
    """llm-sandbox's Docker backend on our local image (it copies a file in, then execs)."""

    def __init__(self) -> None:
        from llm_sandbox import SandboxSession

        t = time.perf_counter()
        self.session = SandboxSession(
            lang="python", image=DEFAULT_IMAGE, skip_environment_setup=True, keep_template=True,
            runtime_configs={"entrypoint": ["sleep", "infinity"], "network_mode": "none",
                             "mem_limit": "512m"})
        self.session.open()
        self.start_ms = (time.perf_counter() - t) * 1000

    def run(self, code: str) -> str:
        r = self.session.run(code)
        return str(r.stdout) + str(r.stderr)

    def close(self) -> None:
        self.session.close()


def workloads(target: Any, n: int) -> dict[str, Any]:
    row: dict[str, Any] = {"start_ms": target.start_ms}
    row["trivial"] = timed(lambda: target.run("pass"), n)
    target.run("state_probe = 41")
    row["keeps_state"] = "42" in target.run("print(state_probe + 1)")
    row["1 MiB output"] = timed(lambda: target.run(ONE_MIB), max(3, n // 10))
    return row


def shim_rss_kb() -> int:
    """Resident memory of all containerd shims: the host-side cost of running containers."""
    out = subprocess.run(["ps", "-C", "containerd-shim-runc-v2,containerd-shim", "-o", "rss="],
                         capture_output=True, text=True, check=False).stdout
    return sum(int(x) for x in out.split() if x.isdigit())


def density(counts: tuple[int, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    with SandboxManager(cleanup_interval=0) as m:
        for n in counts:
            shims_before = shim_rss_kb()
            t = time.perf_counter()
            with concurrent.futures.ThreadPoolExecutor(n) as ex:
                sessions = list(ex.map(lambda _: m.open_session(), range(n)))
            elapsed = (time.perf_counter() - t) * 1000
            time.sleep(2)  # let the Python workers finish importing: measure them idle
            used = [s.stats()["memory_usage"] for s in sessions]
            shims = (shim_rss_kb() - shims_before) * 1024 / n
            out[f"{n} at once"] = {"all_ready_ms": elapsed,
                                   "container_memory_mb": statistics.mean(used) / 2**20,
                                   "host_shim_mb": shims / 2**20}
            for s in sessions:
                m.destroy_session(s.session_id)
    try:
        from llm_sandbox import SandboxSession  # noqa: F401

        n = counts[0]
        t = time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor(n) as ex:
            peers = list(ex.map(lambda _: LLMSandboxTarget(), range(n)))
        out[f"llm-sandbox, {n} at once"] = {"all_ready_ms": (time.perf_counter() - t) * 1000}
        for p in peers:
            p.close()
    except ImportError:
        pass
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true")
    quick = ap.parse_args().quick
    n = 20 if quick else 60
    rows: dict[str, dict[str, Any]] = {}
    for label, factory in (("ipykernel (local, no isolation)", lambda: JupyterTarget("python3")),
                           ("sandbox-kernel", lambda: JupyterTarget("sandbox")),
                           ("llm-sandbox (docker)", LLMSandboxTarget)):
        try:
            target = factory()
        except ImportError:
            print(f"skipping {label}: pip install 'llm-sandbox[docker]'")
            continue
        try:
            rows[label] = workloads(target, n)
        finally:
            target.close()
    dens = density((10,) if quick else (10, 30))

    ref = rows["sandbox-kernel"]
    print(f"{'':<34}{'trivial ms':>12}{'1 MiB ms':>11}{'start ms':>10}  state kept")
    for label, r in rows.items():
        print(f"{label:<34}{r['trivial']['median_ms']:>12.2f}"
              f"{r['1 MiB output']['median_ms']:>11.1f}{r['start_ms']:>10.0f}  "
              f"{'yes' if r['keeps_state'] else 'no'}")
    print("\nratios (other / sandbox-kernel, median):")
    ratios: dict[str, dict[str, float]] = {}
    for label, r in rows.items():
        if label == "sandbox-kernel":
            continue
        ratios[label] = {
            "trivial": r["trivial"]["median_ms"] / ref["trivial"]["median_ms"],
            "1 MiB output": r["1 MiB output"]["median_ms"] / ref["1 MiB output"]["median_ms"],
            "start": r["start_ms"] / ref["start_ms"],
        }
        print(f"  {label:<34} trivial {ratios[label]['trivial']:6.2f}x   1 MiB "
              f"{ratios[label]['1 MiB output']:6.2f}x   start {ratios[label]['start']:5.2f}x")
    print("\ndensity (sandbox-kernel sessions started concurrently):")
    for label, d in dens.items():
        extra = (f", {d['container_memory_mb']:.0f} MB in the container + "
                 f"{d['host_shim_mb']:.1f} MB shim each") if "container_memory_mb" in d else ""
        print(f"  {label:<26} all ready in {d['all_ready_ms']:.0f} ms{extra}")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "compare.json").write_text(json.dumps({
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "rows": rows, "ratios": ratios, "density": dens}, indent=2))
    print(f"\nwrote {RESULTS / 'compare.json'}")


if __name__ == "__main__":
    main()
