"""Create-to-ready, agent round trip and host memory per idle sandbox on every engine, in one run.

    .venv/bin/python benchmarks/engines.py [--quick] [--keep-engines]

Engines: the main Docker engine (runc), and from docker/engines/engines.sh the second
dockerd with runc, with runsc (gVisor) and over TLS (a Docker context), and rootful Podman.
Memory is the PSS of a
sandbox's host processes (its cgroup's, plus the shim or conmon), which other work on the
machine does not disturb. Writes benchmarks/results/engines.json.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import platform
import shlex
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from _stats import timed

from sandbox_kernel.sandbox import Limits, SandboxManager

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
ENGINES_SH = ROOT / "docker" / "engines" / "engines.sh"
ENGINES = ("main", "alt-runc", "alt-runsc", "alt-tls", "podman")
CREATE, TRUE, PASS, MEM = ("create to ready", "execute_command('true')",
                           "python 'pass' (Session.run)", "host MB (PSS) per idle sandbox")
ENGINE_VARS = ("DOCKER_HOST", "DOCKER_CONTEXT", "DOCKER_CONFIG", "DOCKER_TLS_VERIFY",
               "DOCKER_CERT_PATH", "SANDBOX_RUNTIME")


@contextmanager
def engine(name: str) -> Iterator[None]:
    """The process environment of one engine (engines.sh env), restored afterwards."""
    saved = {k: os.environ.pop(k) for k in ENGINE_VARS if k in os.environ}
    if name != "main":
        out = subprocess.run(["bash", str(ENGINES_SH), "env", name], capture_output=True,
                             text=True, check=True)
        os.environ.update(dict(w.split("=", 1) for w in shlex.split(out.stdout)))
    try:
        yield
    finally:
        for k in ENGINE_VARS:
            os.environ.pop(k, None)
        os.environ.update(saved)


def _pss(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup", encoding="ascii") as f:
            return sum(int(line.split()[1]) * 1024 for line in f if line.startswith("Pss:"))
    except (OSError, ValueError):
        return 0


def sandbox_pids(container_id: str) -> set[int]:
    """Host processes of one sandbox: its memory cgroup's, and those naming its id (the
    containerd shim, Podman's conmon, gVisor's gofer)."""
    pids: set[int] = set()
    for procs in glob.glob(f"/sys/fs/cgroup/memory/**/*{container_id}*/cgroup.procs",
                           recursive=True) + \
            glob.glob(f"/sys/fs/cgroup/**/*{container_id}*/cgroup.procs", recursive=True):
        with open(procs, encoding="ascii") as f:
            pids.update(int(p) for p in f.read().split())
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    if container_id.encode() in f.read():
                        pids.add(int(entry))
            except OSError:
                continue
    return pids


def idle_memory(m: SandboxManager, n: int) -> float:
    """MB of host memory (PSS) per idle sandbox, over n sandboxes started together."""
    sessions = [m.open_session() for _ in range(n)]
    time.sleep(3)  # let the runtimes settle (gVisor's Sentry grows after start)
    total = sum(_pss(pid) for s in sessions for pid in sandbox_pids(s.container_id))
    for s in sessions:
        m.destroy_session(s.session_id)
    return round(total / n / 2**20, 1)


def measure(name: str, k: float) -> dict[str, Any]:
    runtime = os.environ.get("SANDBOX_RUNTIME") or None
    row: dict[str, Any] = {"runtime": runtime or "default"}
    with SandboxManager(cleanup_interval=0, runtime=runtime, limits=Limits(pids=64)) as m:
        row["engine"] = m.backend.versions()["summary"]

        def cold() -> None:
            m.destroy_session(m.create_session())

        row[CREATE] = timed(cold, max(3, int(10 * k)), warmup=1)
        s = m.open_session()
        row[TRUE] = timed(lambda: s.execute_command("true"),
                                               max(10, int(100 * k)))
        row[PASS] = timed(
            lambda: s.run("pass", lambda f: None, store_history=False).wait(),
            max(20, int(200 * k)))
        m.destroy_session(s.session_id)
        row[MEM] = idle_memory(m, 4 if k >= 1 else 2)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="fewer repetitions")
    ap.add_argument("--keep-engines", action="store_true", help="leave the engines running")
    args = ap.parse_args()
    k = 0.3 if args.quick else 1.0
    subprocess.run(["bash", str(ENGINES_SH), "start"], check=True, stdout=subprocess.DEVNULL)
    rows: dict[str, dict[str, Any]] = {}
    try:
        for name in ENGINES:
            print(f"== {name}", flush=True)
            with engine(name):
                rows[name] = measure(name, k)
            print(json.dumps(rows[name], indent=1), flush=True)
    finally:
        if not args.keep_engines:
            subprocess.run(["bash", str(ENGINES_SH), "stop"], check=False,
                           stdout=subprocess.DEVNULL)
    RESULTS.mkdir(exist_ok=True)
    out = {"machine": {"cpus": os.cpu_count(), "kernel": platform.release()},
           "quick": args.quick, "engines": rows}
    (RESULTS / "engines.json").write_text(json.dumps(out, indent=1) + "\n")
    print(f"{'engine':<10} {'create ms':>10} {'true ms':>9} {'pass ms':>9} {'MB idle':>8}")
    for name, r in rows.items():
        print(f"{name:<10} {r[CREATE]['median_ms']:>10.0f} {r[TRUE]['median_ms']:>9.2f} "
              f"{r[PASS]['median_ms']:>9.2f} {r[MEM]:>8}")


if __name__ == "__main__":
    main()
