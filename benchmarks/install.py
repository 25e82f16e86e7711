"""`%pip install` of a small wheel into the sandbox against a local `pip install` of it.

    .venv/bin/python benchmarks/install.py [--rounds N]

In one run, against one index on 127.0.0.1 (tests/package_index.py: tabulate, a 39 KB
pure-Python wheel): the reference is the host's pip installing the wheel into a fresh
--target directory from a warm pip cache; the sandbox side is the cell `%pip install
tabulate` in a sandbox kernel, execute to idle, into a fresh sandbox each time. "first" has
the host's install cache empty (what the host fetches), "second" has it warm (the target:
at most 2x the local install). Medians over the rounds; writes
benchmarks/results/install.json. Reports only: targets never fail a build.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _stats import summarize
from kernel import Kernel

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import package_index

RESULTS = Path(__file__).parent / "results"
WHEEL = "tabulate"


def local_install(index: str, cache: Path) -> float:
    """Milliseconds of `pip install WHEEL` into a fresh target, with cache as pip's cache."""
    with tempfile.TemporaryDirectory(prefix="bench-target-") as target:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
        argv = [sys.executable, "-m", "pip", "install", "--isolated", "--quiet",
                "--disable-pip-version-check", "--index-url", index, "--cache-dir", str(cache),
                "--target", target, WHEEL]
        t = time.perf_counter()
        subprocess.run(argv, check=True, env={**env, "PIP_CONFIG_FILE": os.devnull})
        return (time.perf_counter() - t) * 1000


def sandbox_install(k: Kernel) -> float:
    k.roundtrip("%sandbox restart")  # a fresh sandbox, not timed
    k.roundtrip("pass")
    ms = k.roundtrip(f"%pip install {WHEEL}")
    check = k.kc.execute_interactive(f"import {WHEEL}", timeout=60)
    if check["content"]["status"] != "ok":
        raise RuntimeError(f"the sandbox install did not work: {check['content']}")
    return ms


def run(rounds: int) -> dict[str, Any]:
    samples: dict[str, list[float]] = {"local": [], "first": [], "second": []}
    with package_index.serve() as index, tempfile.TemporaryDirectory() as tmp:
        pip_cache = Path(tmp) / "pip-cache"
        local_install(index.simple, pip_cache)  # warm pip's cache
        for n in range(rounds):
            host_cache = Path(tmp) / f"install-cache-{n}"
            os.environ["SANDBOX_INSTALL_CACHE"] = str(host_cache)
            k = Kernel("sandbox", [f"--Sandbox.pip_index_url={index.simple}"])
            try:
                samples["local"].append(local_install(index.simple, pip_cache))
                samples["first"].append(sandbox_install(k))
                samples["local"].append(local_install(index.simple, pip_cache))
                samples["second"].append(sandbox_install(k))
            finally:
                k.close()
    out: dict[str, Any] = {name: summarize(s) for name, s in samples.items()}
    local = out["local"]["median_ms"]
    for name in ("first", "second"):
        out[name]["ratio_to_local"] = round(out[name]["median_ms"] / local, 2)
    out["target"] = "second at most 2x local"
    out["met"] = out["second"]["ratio_to_local"] <= 2.0
    return out


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--rounds", type=int, default=5)
    args = p.parse_args()
    result = {"machine": platform.node(), "python": platform.python_version(),
              "image": os.environ.get("SANDBOX_IMAGE", ""), "wheel": WHEEL,
              **run(args.rounds)}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "install.json").write_text(json.dumps(result, indent=2) + "\n")
    for name in ("local", "first", "second"):
        r = result[name]
        ratio = f"  {r['ratio_to_local']:.2f}x local" if "ratio_to_local" in r else ""
        print(f"{name:<7} median {r['median_ms']:7.0f} ms  p95 {r['p95_ms']:7.0f} ms{ratio}")
    print(f"target ({result['target']}): {'met' if result['met'] else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
