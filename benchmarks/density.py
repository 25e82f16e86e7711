"""Host memory per idle notebook: the sandbox kernel against a local ipykernel, one run.

    .venv/bin/python benchmarks/density.py [--count 10]

Starts N kernels of each kind through jupyter_client, runs one cell in each, lets them
settle, then counts what each costs the host: for a local ipykernel its process's PSS; for
a sandbox kernel the kernel process's PSS, plus its container's memory (the cgroup's usage
less inactive file cache, as the sandbox reports it), plus the PSS of the container's
containerd shim. Writes benchmarks/results/density.json.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Any

from jupyter_client.manager import KernelManager
from jupyter_client.provisioning.local_provisioner import LocalProvisioner

import docker
from sandbox_kernel.sandbox.backend import LABEL_OWNER_PID

RESULTS = Path(__file__).parent / "results"
MB = 2**20


def pss(pid: int) -> int:
    """Proportional set size of a process, bytes (shared pages split among their users)."""
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1]) * 1024
    return 0


def kernel_pid(km: KernelManager) -> int:
    """The pid of a kernel that jupyter_client started as a local process."""
    prov = km.provisioner
    assert isinstance(prov, LocalProvisioner) and prov.process is not None
    return int(prov.process.pid)


def shim_of(container_id: str) -> int | None:
    """The pid of the containerd shim that runs `container_id`."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and b"containerd-shim" in argv[0] and container_id.encode() in argv:
            return int(entry.name)
    return None


def start(name: str, n: int) -> list[tuple[KernelManager, Any]]:
    kernels = []
    for _ in range(n):
        km = KernelManager(kernel_name=name)
        km.start_kernel()
        kc = km.client()
        kc.start_channels()
        kc.wait_for_ready(timeout=120)
        kc.execute_interactive("x = 1", timeout=120)
        kernels.append((km, kc))
    return kernels


def stop(kernels: list[tuple[KernelManager, Any]]) -> None:
    for km, kc in kernels:
        kc.stop_channels()
        km.shutdown_kernel(now=False)


def container_of(api: Any, kernel_pid: int) -> tuple[str, int]:
    """The sandbox kernel's container (by its owner label) and its memory use, as the
    sandbox reports it: usage less inactive file cache."""
    (found,) = api.containers(filters={"label": f"{LABEL_OWNER_PID}={kernel_pid}"})
    mem = api.stats(found["Id"], stream=False)["memory_stats"]
    stats = mem.get("stats", {})
    inactive = stats.get("total_inactive_file", stats.get("inactive_file", 0))
    return found["Id"], int(mem["usage"]) - int(inactive)


def p95(values: list[int]) -> float:
    """The 95th percentile (nearest rank) of `values`: with 10 samples, the largest."""
    ordered = sorted(values)
    return float(ordered[min(len(ordered) - 1, math.ceil(len(ordered) * 0.95) - 1)])


def measure(n: int) -> dict[str, Any]:
    local = start("python3", n)
    sandbox = start("sandbox", n)
    try:
        time.sleep(3)  # imports and first-cell work settle
        local_pss = [pss(kernel_pid(km)) for km, _ in local]
        rows = []
        api = docker.APIClient()
        for km, _ in sandbox:
            cid, container = container_of(api, kernel_pid(km))
            shim = shim_of(cid)
            rows.append({"kernel_pss": pss(kernel_pid(km)),
                         "container": container, "shim_pss": pss(shim) if shim else 0})
    finally:
        stop(sandbox)
        stop(local)
    per = [r["kernel_pss"] + r["container"] + r["shim_pss"] for r in rows]
    return {
        "count": n,
        "ipykernel_pss_mb": statistics.median(local_pss) / MB,
        "ipykernel_pss_p95_mb": p95(local_pss) / MB,
        "sandbox_total_mb": statistics.median(per) / MB,
        "sandbox_total_p95_mb": p95(per) / MB,
        "sandbox_kernel_pss_mb": statistics.median(r["kernel_pss"] for r in rows) / MB,
        "sandbox_container_mb": statistics.median(r["container"] for r in rows) / MB,
        "sandbox_shim_pss_mb": statistics.median(r["shim_pss"] for r in rows) / MB,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--count", type=int, default=10)
    r = measure(ap.parse_args().count)
    ratio = r["sandbox_total_mb"] / r["ipykernel_pss_mb"]
    print(f"{r['count']} idle notebooks of each, medians per notebook:")
    print(f"  local ipykernel        {r['ipykernel_pss_mb']:6.1f} MB (PSS)")
    print(f"  sandbox kernel         {r['sandbox_total_mb']:6.1f} MB = kernel "
          f"{r['sandbox_kernel_pss_mb']:.1f} + container {r['sandbox_container_mb']:.1f} + "
          f"shim {r['sandbox_shim_pss_mb']:.1f}")
    ratio_p95 = r["sandbox_total_p95_mb"] / r["ipykernel_pss_p95_mb"]
    print(f"  p95                    {r['sandbox_total_p95_mb']:6.1f} MB against "
          f"{r['ipykernel_pss_p95_mb']:.1f} MB ({ratio_p95:.2f}x)")
    met = "met " if ratio <= 1.4 else "MISS"
    print(f"  ratio (medians)        {ratio:6.2f}x   ({met} <= 1.4x)")
    per_24g = {k: int(24 * 1024 / r[k]) for k in ("ipykernel_pss_mb", "sandbox_total_mb")}
    print(f"  notebooks in 24 GiB  {per_24g['sandbox_total_mb']} against "
          f"{per_24g['ipykernel_pss_mb']}")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "density.json").write_text(json.dumps({
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        **r, "ratio": ratio, "ratio_p95": ratio_p95, "target_met": ratio <= 1.4}, indent=2))
    print(f"\nwrote {RESULTS / 'density.json'}")


if __name__ == "__main__":
    main()
