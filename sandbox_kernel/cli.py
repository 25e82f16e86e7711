"""The `sandbox-kernel` command line: image, one-shot execution, inspection and cleanup.

Every failure prints one sentence on stderr and exits non-zero; no host traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence

from . import __version__
from .agent.protocol import PROTOCOL_VERSION
from .errors import SandboxError
from .sandbox.backend import Backend
from .sandbox.spec import Limits, format_size


def _backend() -> Backend:
    from .sandbox.docker_backend import DockerBackend

    return DockerBackend()


def _image(args: argparse.Namespace) -> str:
    from .sandbox.manager import DEFAULT_IMAGE

    return str(args.image or os.environ.get("SANDBOX_IMAGE") or DEFAULT_IMAGE)


def cmd_build_image(args: argparse.Namespace) -> int:
    from .sandbox.image import PACKAGE_DIR, docker_dir

    script = docker_dir() / "build-sandbox.sh"
    argv = ["bash", str(script), "--tag", _image(args), "--agent-src", str(PACKAGE_DIR)]
    if args.base:
        argv += ["--base", args.base]
    if args.force:
        argv.append("--force")
    env = {**os.environ, "PYTHON": sys.executable}
    return subprocess.call(argv, env=env)


def cmd_test_image(args: argparse.Namespace) -> int:
    from .sandbox.image import docker_dir

    return subprocess.call(["bash", str(docker_dir() / "test-sandbox.sh"), _image(args)])


def _limits(args: argparse.Namespace) -> Limits:
    changes = {k: v for k, v in (("memory", args.memory), ("cpus", args.cpus),
                                 ("pids", args.pids), ("timeout", args.timeout))
               if v is not None}
    return Limits().changed(**changes)


def cmd_exec(args: argparse.Namespace) -> int:
    from .sandbox.manager import SandboxManager

    command = list(args.command)
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        raise SandboxError("nothing to run: give a command after '--', e.g. "
                           "sandbox-kernel exec -- python3 -c 'print(1)'")
    limits = _limits(args)

    def out(name: str, text: str) -> None:
        stream = sys.stdout if name == "stdout" else sys.stderr
        stream.write(text)
        stream.flush()

    with SandboxManager(image=_image(args), limits=limits, cleanup_interval=0) as manager:
        session = manager.open_session()
        result = session.execute_command(command, on_output=out)
    if result.timed_out:
        print(f"sandbox-kernel: command timed out after {limits.timeout:g} s and was killed",
              file=sys.stderr)
        return 124
    if result.oom_killed:
        print(f"sandbox-kernel: command exceeded the {format_size(limits.memory)} memory limit "
              "(OOM)", file=sys.stderr)
        return 137
    if result.truncated_bytes:
        print(f"sandbox-kernel: output truncated ({result.truncated_bytes} bytes dropped)",
              file=sys.stderr)
    return result.exit_code


def cmd_ls(args: argparse.Namespace) -> int:
    from .sandbox.backend import LABEL_CREATED, LABEL_SESSION
    from .sandbox.reaper import owner_of

    rows = _backend().list_owned()
    if args.json:
        print(json.dumps([r.__dict__ for r in rows], indent=2))
        return 0
    if not rows:
        print("no sandbox containers")
        return 0
    print(f"{'SESSION':<13} {'CONTAINER':<13} {'STATUS':<9} {'AGE':>7}  {'OWNER':<18} NAME")
    now = time.time()
    for r in rows:
        owner = owner_of(r)
        alive = owner.alive() if owner else None
        who = f"{owner.pid} ({'alive' if alive else 'gone' if alive is False else '?'})" \
            if owner else "?"
        try:
            age = f"{now - float(r.labels.get(LABEL_CREATED, now)):.0f}s"
        except ValueError:
            age = "?"
        print(f"{r.labels.get(LABEL_SESSION, '?'):<13} {r.id[:12]:<13} {r.status:<9} "
              f"{age:>7}  {who:<18} {r.name}")
    return 0


def _find(ident: str) -> str:
    from .sandbox.backend import LABEL_SESSION

    for r in _backend().list_owned():
        if ident in (r.labels.get(LABEL_SESSION), r.name) or r.id.startswith(ident):
            return r.id
    raise SandboxError(f"no sandbox container matches {ident!r}; see 'sandbox-kernel ls'")


def cmd_health(args: argparse.Namespace) -> int:
    backend = _backend()
    cid = _find(args.id)
    # Run from the agent's own (read-only) directory, as the entrypoint does: from the exec's
    # default cwd (/sandbox) the module is not importable, and /sandbox is user-writable.
    probe = ["/bin/sh", "-c", "cd /opt/sandbox-kernel && exec /opt/venv/bin/python -E -s -m "
             "sandbox_kernel.agent.cgroup"]

    def sample() -> dict[str, float]:
        code, output = backend.exec_in(cid, probe)
        if code != 0:
            raise SandboxError(f"cannot read the sandbox's counters (exit {code})")
        try:
            data = json.loads(output.decode("utf-8", "replace"))
            return {k: float(data[k] or 0) for k in ("taken_at", "cpu_usage_ns",
                                                     "memory_usage", "memory_limit", "pids",
                                                     "pids_limit")}
        except (ValueError, KeyError, TypeError):
            raise SandboxError("the sandbox's counters are unreadable (malformed probe "
                               "output)") from None

    a = sample()
    time.sleep(0.5)
    b = sample()
    wall = b["taken_at"] - a["taken_at"]
    cpu = max(0.0, (b["cpu_usage_ns"] - a["cpu_usage_ns"]) / (wall * 1e9) * 100) if wall else 0.0
    mem = 100 * b["memory_usage"] / b["memory_limit"] if b.get("memory_limit") else 0.0
    if args.json:
        print(json.dumps({**b, "cpu_percent": round(cpu, 1), "memory_percent": round(mem, 1)}))
    if mem >= args.threshold:
        if not args.json:
            print(f"UNHEALTHY: Memory usage exceeds threshold: {args.threshold:g}%")
        return 1
    if not args.json:
        print(f"HEALTHY: Memory={mem:.0f}% CPU={cpu:.0f}% "
              f"Pids={int(b['pids'])}/{int(b.get('pids_limit') or 0)}")
    return 0


def cmd_cleanup(args: argparse.Namespace) -> int:
    from .sandbox.reaper import reap

    removed = reap(_backend(), dry_run=args.dry_run)
    verb = "would remove" if args.dry_run else "removed"
    for r in removed:
        print(f"{verb} {r.name} ({r.container_id[:12]}): {r.reason}")
    print(f"{len(removed)} container(s) {verb}")
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    from .sandbox.image import agent_hash
    from .sandbox.manager import SandboxManager

    image = _image(args)
    ok = True

    def report(good: bool, text: str) -> None:
        nonlocal ok
        ok = ok and good
        print(f"{'ok ' if good else 'FAIL'}  {text}")

    print(f"sandbox-kernel {__version__}, agent protocol {PROTOCOL_VERSION}")
    backend = _backend()
    try:
        v = backend.versions()
        report(True, f"Docker engine {v['engine']} (API {v['api']}), cgroup v{v['cgroup']}, "
                     f"runtime {v['runtime']}, security: {v['security'] or 'none'}")
    except SandboxError as exc:
        report(False, str(exc))
        return 1
    try:
        backend.check(image)
        labels = backend.image_labels(image)
        fresh = labels.get("sandbox_kernel.agent_hash") == agent_hash()
        report(True, f"image {image} present")
        report(fresh, "image matches this agent" if fresh else
               "image was built from other agent sources: run 'sandbox-kernel build-image'")
    except (SandboxError, FileNotFoundError) as exc:
        report(False, str(exc))
        return 1
    try:
        t0 = time.perf_counter()
        with SandboxManager(image=image, cleanup_interval=0) as manager:
            session = manager.open_session()
            started = (time.perf_counter() - t0) * 1000
            result = session.execute_command(["python3", "-c", "print(1+1)"])
            node = session.execute_command(["node", "-e", "console.log(process.version)"])
        report(result.stdout.strip() == "2",
               f"sandbox starts ({started:.0f} ms) and runs Python: {result.stdout.strip()!r}")
        report(node.exit_code == 0, f"Node.js in the sandbox: {node.stdout.strip()!r}")
    except SandboxError as exc:
        report(False, f"a sandbox could not run: {exc}")
    print("all checks passed" if ok else "some checks failed")
    return 0 if ok else 1


def cmd_pool(args: argparse.Namespace) -> int:
    from .sandbox.manager import SandboxManager

    env = {"SANDBOX_AGENT_PRESTART": args.language}
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # stop cleanly on kill/TERM
    with SandboxManager(image=_image(args), limits=_limits(args), pool_size=args.size,
                        env=env, cleanup_interval=60) as manager:
        manager.pool.fill_once()
        print(f"keeping {args.size} warm sandbox(es) for kernels and sessions with default "
              "limits; Ctrl-C to stop (they are removed on exit)", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            print("stopping the pool", file=sys.stderr)
    return 0


def cmd_install(args: argparse.Namespace) -> int:
    from .kernel.install import install

    for path in install(user=args.user, sys_prefix=args.sys_prefix, prefix=args.prefix,
                        name=args.name):
        print(f"installed kernelspec in {path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="sandbox-kernel",
        description="Run notebook code in hardened Docker sandboxes.")
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    p.add_argument("--image", help="sandbox image (default: sandbox-kernel:agent-v"
                                   f"{PROTOCOL_VERSION}, or $SANDBOX_IMAGE)")
    sub = p.add_subparsers(dest="command_name", metavar="COMMAND", required=True)

    s = sub.add_parser("install", help="install the Jupyter kernelspecs")
    where = s.add_mutually_exclusive_group()
    where.add_argument("--user", action="store_true", help="into the user's Jupyter data dir")
    where.add_argument("--sys-prefix", action="store_true", help="into sys.prefix (a venv)")
    where.add_argument("--prefix", help="into PREFIX/share/jupyter/kernels")
    s.add_argument("--name", default="sandbox", help="kernelspec name (default: sandbox)")
    s.set_defaults(func=cmd_install)

    s = sub.add_parser("build-image", help="build the sandbox image (no registry needed)")
    s.add_argument("--base", help="base image (default: bootstrap Debian bookworm)")
    s.add_argument("--force", action="store_true", help="rebuild even if up to date")
    s.set_defaults(func=cmd_build_image)

    s = sub.add_parser("test-image", help="check the image's hardening and tools")
    s.set_defaults(func=cmd_test_image)

    s = sub.add_parser("exec", help="run one command in a fresh sandbox, then remove it")
    s.add_argument("--memory", help="memory limit, e.g. 512m")
    s.add_argument("--cpus", help="CPU limit, e.g. 0.5")
    s.add_argument("--pids", help="process limit, e.g. 64")
    s.add_argument("--timeout", help="wall-clock limit, e.g. 30s")
    s.add_argument("command", nargs=argparse.REMAINDER, help="-- CMD [ARG...]")
    s.set_defaults(func=cmd_exec)

    s = sub.add_parser("pool", help="keep warm sandboxes that new kernels claim at start")
    s.add_argument("--size", type=int, default=2, help="how many to keep ready (default 2)")
    s.add_argument("--language", choices=("python", "node"), default="python",
                   help="interpreter to prestart (match the kernels that will claim them)")
    s.add_argument("--memory", help=argparse.SUPPRESS)
    s.add_argument("--cpus", help=argparse.SUPPRESS)
    s.add_argument("--pids", help=argparse.SUPPRESS)
    s.add_argument("--timeout", help=argparse.SUPPRESS)
    s.set_defaults(func=cmd_pool)

    s = sub.add_parser("ls", help="list sandbox containers on this engine")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_ls)

    s = sub.add_parser("health", help="HEALTHY/UNHEALTHY line for one sandbox")
    s.add_argument("id", help="session id, container id or name")
    s.add_argument("--threshold", type=float, default=95.0, help="memory %% that is unhealthy")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_health)

    s = sub.add_parser("cleanup", help="remove our stale and orphaned containers")
    s.add_argument("--dry-run", action="store_true", help="only say what would be removed")
    s.set_defaults(func=cmd_cleanup)

    s = sub.add_parser("doctor", help="check engine, image and a sandbox round trip")
    s.set_defaults(func=cmd_doctor)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.func(args)
    except SandboxError as exc:
        print(f"sandbox-kernel: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
