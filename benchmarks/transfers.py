"""64 MiB in and out of a sandbox, side by side with `docker cp`, in one run.

    .venv/bin/python benchmarks/transfers.py [--quick]

Four paths, alternated round by round so that noise hits them alike: the library's
streaming `write_file_from`/`read_file_to`, the kernel's `%sandbox upload`/`download`
(through jupyter_client, as a notebook sends them), and `docker cp` into and out of a plain
container of the same image (the reference). Reports MiB/s (median, p95 of the time) and
the peak RSS above baseline of the process that moves the bytes (this one for the library,
the kernel process for the magics). Writes benchmarks/results/transfers.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from _stats import summarize
from jupyter_client.manager import KernelManager

from sandbox_kernel.sandbox import DEFAULT_IMAGE, SandboxManager

RESULTS = Path(__file__).parent / "results"
SIZE = 64 * 2**20


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


@contextmanager
def peak_rss(pid: int, into: list[int]) -> Iterator[None]:
    """Sample `pid`'s RSS every 5 ms while the block runs; append the peak above baseline."""
    base, peak, stop = rss_kb(pid), [0], threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], rss_kb(pid))
            time.sleep(0.005)

    t = threading.Thread(target=sample, daemon=True)
    t.start()
    try:
        yield
    finally:
        stop.set()
        t.join()
        into.append(max(0, max(peak[0], rss_kb(pid)) - base))


class Kernel:
    """A sandbox kernel in `cwd` (the notebook's directory), driven like a frontend."""

    def __init__(self, cwd: str) -> None:
        self.km = KernelManager(kernel_name="sandbox")
        self.km.start_kernel(cwd=cwd)
        self.kc = self.km.client()
        self.kc.start_channels()
        self.kc.wait_for_ready(timeout=120)
        self.run("1")
        self.pid = int(self.km.provisioner.process.pid)  # type: ignore[union-attr]

    def run(self, code: str) -> str:
        out: list[str] = []

        def hook(msg: dict[str, Any]) -> None:
            if msg["msg_type"] in ("stream", "error"):
                out.append(str(msg["content"].get("text", msg["content"].get("evalue"))))

        reply = self.kc.execute_interactive(code, timeout=300, output_hook=hook)
        if reply["content"]["status"] != "ok":
            raise RuntimeError("".join(out))
        return "".join(out)

    def close(self) -> None:
        self.kc.stop_channels()
        self.km.shutdown_kernel(now=False)


def docker(*argv: str) -> None:
    subprocess.run(["docker", *argv], check=True, capture_output=True)


def clock(fn: Callable[[], object], into: list[float]) -> None:
    t = time.perf_counter()
    fn()
    into.append((time.perf_counter() - t) * 1000)


def rounds(n: int, work: str) -> dict[str, dict[str, Any]]:
    """n rounds of each path; times in ms and peak RSS growth in kB."""
    src, back = Path(work, "blob.bin"), Path(work, "back.bin")
    src.write_bytes(os.urandom(SIZE))
    times: dict[str, list[float]] = {k: [] for k in (
        "docker cp in", "docker cp out", "library write_file_from", "library read_file_to",
        "%sandbox upload", "%sandbox download")}
    rss: dict[str, list[int]] = {k: [] for k in times if not k.startswith("docker")}
    plain = f"sk-bench-cp-{os.getpid()}"
    docker("run", "-d", "--name", plain, "--network", "none", "--entrypoint", "sleep",
           DEFAULT_IMAGE, "infinity")
    kernel = Kernel(work)
    try:
        with SandboxManager(cleanup_interval=0) as m:
            s = m.open_session()
            me = os.getpid()
            for _ in range(n):
                clock(lambda: docker("cp", str(src), f"{plain}:/tmp/blob.bin"),
                      times["docker cp in"])
                clock(lambda: docker("cp", f"{plain}:/tmp/blob.bin", str(back)),
                      times["docker cp out"])
                back.unlink()
                with peak_rss(me, rss["library write_file_from"]), src.open("rb") as f:
                    clock(lambda: s.write_file_from("blob.bin", f, SIZE),
                          times["library write_file_from"])
                with peak_rss(me, rss["library read_file_to"]), back.open("wb") as f:
                    clock(lambda: s.read_file_to("blob.bin", f), times["library read_file_to"])
                assert back.stat().st_size == SIZE
                back.unlink()
                with peak_rss(kernel.pid, rss["%sandbox upload"]):
                    clock(lambda: kernel.run("%sandbox upload blob.bin"), times["%sandbox upload"])
                with peak_rss(kernel.pid, rss["%sandbox download"]):
                    clock(lambda: kernel.run("%sandbox download blob.bin back.bin"),
                          times["%sandbox download"])
                assert back.read_bytes() == src.read_bytes()
                back.unlink()
    finally:
        kernel.close()
        docker("rm", "-f", plain)
    out: dict[str, dict[str, Any]] = {}
    for name, ms in times.items():
        row: dict[str, Any] = summarize(ms)
        row["mib_per_s"] = (SIZE / 2**20) / (row["median_ms"] / 1000)
        if name in rss:
            row["peak_rss_growth_mb"] = max(rss[name]) / 1024
        out[name] = row
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="3 rounds instead of 10")
    n = 3 if ap.parse_args().quick else 10
    with tempfile.TemporaryDirectory() as work:
        rows = rounds(n, work)
    print(f"{'64 MiB':<26}{'MiB/s':>8}{'median ms':>11}{'p95 ms':>9}{'peak RSS +MB':>14}")
    for name, r in rows.items():
        extra = f"{r['peak_rss_growth_mb']:>14.1f}" if "peak_rss_growth_mb" in r else ""
        print(f"{name:<26}{r['mib_per_s']:>8.0f}{r['median_ms']:>11.0f}{r['p95_ms']:>9.0f}"
              f"{extra}")
    ratios = {name: rows[ref]["median_ms"] / rows[name]["median_ms"] for name, ref in (
        ("library write_file_from", "docker cp in"), ("%sandbox upload", "docker cp in"),
        ("library read_file_to", "docker cp out"), ("%sandbox download", "docker cp out"))}
    print("\nspeed against docker cp (higher is faster):")
    targets: dict[str, bool] = {}
    for name, ratio in ratios.items():
        print(f"  {name:<26}{ratio:6.2f}x")
        targets[f"{name} >= docker cp"] = ratio >= 1.0
        if "peak_rss_growth_mb" in rows[name]:
            targets[f"{name} peak RSS <= +16 MB"] = rows[name]["peak_rss_growth_mb"] <= 16
    for name, met in targets.items():
        print(f"{'met ' if met else 'MISS'}  {name}")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "transfers.json").write_text(json.dumps({
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "size_mib": SIZE // 2**20, "rounds": n, "rows": rows, "ratios": ratios,
        "targets": targets}, indent=2))
    print(f"\nwrote {RESULTS / 'transfers.json'}")


if __name__ == "__main__":
    main()
