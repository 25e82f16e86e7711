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
from typing import Any

from . import __version__
from .agent.protocol import PROTOCOL_VERSION
from .cli_images import add_build_image
from .cli_kernelspecs import add_kernelspec_commands
from .errors import SandboxError
from .sandbox.backend import Backend
from .sandbox.spec import Limits
from .sandbox.units import format_size


def _backend(args: argparse.Namespace | None = None) -> Backend:
    from .sandbox.engines import make_backend

    return make_backend(allow_unenforced_limits=bool(getattr(args, "allow_unenforced_limits",
                                                             False)))


def _runtime(args: argparse.Namespace) -> str | None:
    return str(args.runtime if args.runtime is not None else
               os.environ.get("SANDBOX_RUNTIME", "")) or None


def _image(args: argparse.Namespace) -> str:
    from .sandbox.image import default_image

    return str(args.image or default_image())


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

    with SandboxManager(image=_image(args), limits=limits, cleanup_interval=0,
                        backend=_backend(args), runtime=_runtime(args)) as manager:
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

    rows = _backend(args).list_owned()
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


def _find(backend: Backend, ident: str) -> str:
    from .sandbox.backend import LABEL_SESSION

    for r in backend.list_owned():
        if ident in (r.labels.get(LABEL_SESSION), r.name) or r.id.startswith(ident):
            return r.id
    raise SandboxError(f"no sandbox container matches {ident!r}; see 'sandbox-kernel ls'")


def cmd_health(args: argparse.Namespace) -> int:
    backend = _backend(args)
    cid = _find(backend, args.id)
    # Run from the agent's own (read-only) directory, as the entrypoint does: from the exec's
    # default cwd (/sandbox) the module is not importable, and /sandbox is user-writable.
    probe = ["/bin/sh", "-c", "cd /opt/sandbox-kernel && exec /opt/venv/bin/python -E -s -m "
             "sandbox_kernel.agent.measure"]

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

    removed = reap(_backend(args), dry_run=args.dry_run)
    verb = "would remove" if args.dry_run else "removed"
    for r in removed:
        print(f"{verb} {r.name} ({r.container_id[:12]}): {r.reason}")
    print(f"{len(removed)} container(s) {verb}")
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    from .cli_doctor import cmd_doctor as doctor

    return doctor(args, _backend(args), _runtime(args))


def cmd_pool(args: argparse.Namespace) -> int:
    from .kernel.launcher import kernel_env
    from .sandbox.manager import SandboxManager

    env = kernel_env({}, args.language)
    # Stop cleanly on kill/TERM, and on Ctrl-C even when started by a script whose
    # background jobs inherit SIGINT ignored.
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, signal.default_int_handler)
    with SandboxManager(image=_image(args), limits=_limits(args), pool_size=args.size,
                        env=env, cleanup_interval=60, backend=_backend(args),
                        runtime=_runtime(args)) as manager:
        manager.pool.fill_once()
        print(f"keeping {args.size} warm sandbox(es) for kernels and sessions with default "
              "limits; Ctrl-C to stop (they are removed on exit)", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            print("stopping the pool", file=sys.stderr)
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="sandbox-kernel",
        description="Run notebook code in hardened Docker sandboxes.")
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    p.add_argument("--image", help="sandbox image (default: sandbox-kernel:agent-v"
                                   f"{PROTOCOL_VERSION}, or $SANDBOX_IMAGE)")
    p.add_argument("--runtime", help="the engine's OCI runtime for sandboxes, e.g. runsc "
                                     "(default: $SANDBOX_RUNTIME, else the engine's default)")
    p.add_argument("--allow-unenforced-limits", action="store_true",
                   help="accept an engine where limits cannot hold (rootless Podman on "
                        "cgroup v1); unsafe")
    sub = p.add_subparsers(dest="command_name", metavar="COMMAND", required=True)
    add_kernelspec_commands(sub, lambda image: _backend().image_labels(image))
    add_build_image(sub, _image)
    _sandbox_commands(sub)
    _maintenance_commands(sub)
    return p


def _sandbox_commands(sub: Any) -> None:
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


def _maintenance_commands(sub: Any) -> None:
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

    s = sub.add_parser("doctor", help="check the kernelspecs, the Jupyter config, the engine, "
                                      "the configured images and a sandbox round trip")
    s.set_defaults(func=cmd_doctor)


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
