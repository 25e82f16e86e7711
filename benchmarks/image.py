"""Image builds, side by side in one run: the sandbox image from cold caches against warm ones,
and a derived image against the sandbox image it adds to.

    .venv/bin/python benchmarks/image.py

Builds under throwaway tags with `sandbox-kernel build-image`, as a user would:
- cold: empty build cache and pip/uv caches (a fresh $XDG_CACHE_HOME), docker build --no-cache;
- warm: the wheels and Node tarballs already staged, docker build --no-cache again;
- up to date: the same command once more (nothing changed, nothing built);
- docker layer cache: --force, as after a change of the agent's sources only;
- derived: --requirements (one small wheel) --npm (one package) --apt (one package), first
  and second time.
The Debian base image (sandbox-kernel-base:bookworm) is assumed present. Writes
benchmarks/results/image.json; removes its images, stages and caches afterwards.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sandbox_kernel.sandbox.image import context_dir

RESULTS = Path(__file__).parent / "results"
CLI = str(Path(sys.executable).with_name("sandbox-kernel"))
TAG = f"sandbox-kernel-bench/image:{os.getpid()}"
DERIVED = f"sandbox-kernel-bench/derived:{os.getpid()}"


def run(env: dict[str, str], *args: str) -> float:
    """Seconds one CLI command takes (its output kept out of the way)."""
    t = time.perf_counter()
    proc = subprocess.run([CLI, *args], env=env, capture_output=True, text=True, check=False)
    took = time.perf_counter() - t
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    return took


def size_mb(image: str) -> float:
    out = subprocess.run(["docker", "image", "inspect", "-f", "{{.Size}}", image],
                         capture_output=True, text=True, check=True).stdout
    return int(out) / 1e6


def stage_images() -> set[str]:
    out = subprocess.run(["docker", "images", "-q", "--no-trunc", "--filter", "dangling=true",
                          "--filter", "label=sandbox_kernel.build_stage"],
                         capture_output=True, text=True, check=True).stdout
    return set(out.split())


def main() -> None:
    cache = Path(tempfile.mkdtemp(prefix="sandbox-bench-cache-"))
    env = {**os.environ, "XDG_CACHE_HOME": str(cache)}
    env.pop("SANDBOX_IMAGE", None)
    before = stage_images()
    reqs = cache / "requirements.txt"
    reqs.write_text("tabulate==0.9.0\n")
    rows: dict[str, float] = {}
    try:
        rows["sandbox image, cold caches (s)"] = run(env, "build-image", "--tag", TAG,
                                                     "--no-cache")
        rows["sandbox image, wheels staged (s)"] = run(env, "build-image", "--tag", TAG,
                                                       "--no-cache")
        rows["sandbox image, up to date (s)"] = run(env, "build-image", "--tag", TAG)
        rows["sandbox image, docker layer cache (s)"] = run(env, "build-image", "--tag", TAG,
                                                            "--force")
        derived = ["build-image", "--from", TAG, "-r", str(reqs), "--npm", "is-number@7.0.0",
                   "--apt", "jq", "--tag", DERIVED]
        rows["derived image, first (s)"] = run(env, *derived)
        rows["derived image, up to date (s)"] = run(env, *derived)
        rows["sandbox image (MB)"] = size_mb(TAG)
        rows["derived image adds (MB)"] = size_mb(DERIVED) - size_mb(TAG)
        rows["Debian base image (MB)"] = size_mb("sandbox-kernel-base:bookworm")
    finally:
        subprocess.run(["docker", "rmi", "-f", DERIVED, TAG], capture_output=True, check=False)
        for leftover in stage_images() - before:  # this run's build stages only
            subprocess.run(["docker", "rmi", leftover], capture_output=True, check=False)
        for tag in (TAG, DERIVED):
            shutil.rmtree(context_dir(tag, env), ignore_errors=True)
        shutil.rmtree(cache, ignore_errors=True)
    rows["warm / cold"] = rows["sandbox image, wheels staged (s)"] / \
        rows["sandbox image, cold caches (s)"]
    for name, value in rows.items():
        print(f"{name:<36} {value:9.2f}")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "image.json").write_text(json.dumps({
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
