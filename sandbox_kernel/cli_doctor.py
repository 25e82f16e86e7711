"""`sandbox-kernel doctor`: what a kernel started from Jupyter would meet.

It reads the Jupyter configuration the kernel reads (the same files, checked by the same
code, kernel/config_check.py), each installed sandbox kernelspec (its interpreter, its
argv settings), the images those configure, the engine, and runs one sandbox.
"""

from __future__ import annotations

import argparse
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .agent.protocol import PROTOCOL_VERSION
from .errors import SandboxError
from .sandbox.backend import Backend

Report = Callable[[bool, str], None]


@dataclass(frozen=True)
class KernelConfig:
    """One kernelspec (or none: the bare configuration) and the settings it gives."""

    label: str
    image: str
    fatal: tuple[str, ...]
    warnings: tuple[str, ...]


def _cli_config(argv: list[str]) -> Any:
    """The `--Sandbox.name=value` arguments of a kernelspec's argv, as traitlets has them."""
    from traitlets.config import Config
    from traitlets.config.loader import DeferredConfigString

    config = Config()
    for arg in argv:
        if arg.startswith("--Sandbox.") and "=" in arg:
            name, _, value = arg[len("--Sandbox."):].partition("=")
            config.Sandbox[name] = DeferredConfigString(value)
    return config


def _load_files() -> tuple[Any, Any]:
    """The Jupyter config files the kernel app loads, in its order, merged."""
    from jupyter_core.paths import jupyter_config_path
    from traitlets.config import Config
    from traitlets.config.loader import JSONFileConfigLoader, PyFileConfigLoader

    from .kernel.config_sources import ConfigSources

    sources = ConfigSources()
    merged = Config()
    for base in ("ipython_config", "sandbox_kernel_config"):
        for config, _ in sources.load((PyFileConfigLoader, JSONFileConfigLoader), base,
                                      list(jupyter_config_path()), None):
            merged.merge(config)
    return merged, sources


def kernel_configs(specs: dict[str, Any]) -> tuple[list[str], list[KernelConfig]]:
    """The config files found, and the settings of each sandbox kernelspec."""
    import copy

    from .kernel.app import SandboxKernelApp
    from .kernel.config_check import check_settings
    from .kernel.config_sources import ConfigSources

    files, file_sources = _load_files()
    known = tuple({c.__name__ for cls in SandboxKernelApp.classes for c in cls.mro()})
    out = []
    for label, argv, env in [*((f"kernelspec {n}", s["spec"]["argv"], s["spec"].get("env")
                                or {}) for n, s in specs.items()), ("", [], {})]:
        if not label and specs:
            break  # the bare configuration only when no kernelspec is installed
        cli = _cli_config(argv)
        sources = ConfigSources(cli)
        sources.files, sources.failures = file_sources.files, file_sources.failures
        config = copy.deepcopy(files)
        config.merge(cli)
        checked = check_settings(config, sources, known)
        image = checked.settings.image
        if not sources.where("Sandbox", "image") and env.get("SANDBOX_IMAGE"):
            image = str(env["SANDBOX_IMAGE"])
        out.append(KernelConfig(label or "configuration", image, checked.fatal,
                                checked.warnings))
    return [name for name, _ in file_sources.files], out


def sandbox_specs() -> dict[str, Any]:
    """Installed kernelspecs that start this kernel (`-m sandbox_kernel` in argv)."""
    from jupyter_client.kernelspec import KernelSpecManager

    specs = KernelSpecManager().get_all_specs()
    return {name: s for name, s in sorted(specs.items())
            if "sandbox_kernel" in (s.get("spec", {}).get("argv") or [])}


def check_specs(specs: dict[str, Any], report: Report) -> None:
    if not specs:
        report(False, "no sandbox kernelspec is installed (Jupyter lists no kernel for "
                      "it); run 'sandbox-kernel install --user'")
    for name, s in specs.items():
        argv = s["spec"]["argv"]
        python = argv[0] if argv else ""
        runs = bool(python) and (os.access(python, os.X_OK) or shutil.which(python) is not None)
        report(runs, f"kernelspec {name} ({s['spec'].get('display_name', '?')!r}, "
                     f"{s['resource_dir']}): " + (f"runs {python}" if runs else
                     f"its interpreter {python!r} does not exist; reinstall it with "
                     "'sandbox-kernel install'"))


def check_configs(files: list[str], configs: list[KernelConfig], report: Report) -> None:
    report(True, "config files: " + (", ".join(files) if files else
                                     "none (every setting has its default)"))
    for kc in configs:
        for line in kc.fatal:
            report(False, f"{kc.label}: {line.removeprefix('[sandbox] ')}")
        for line in kc.warnings:
            print(f"note  {kc.label}: {line.removeprefix('[sandbox] ')}")


def check_images(backend: Backend, images: list[str], report: Report) -> bool:
    """Each configured image is on the engine, speaks this protocol, matches this agent."""
    from .sandbox.image import agent_hash, build_hint

    good = True
    for image in images:
        try:
            backend.check(image)
            labels = backend.image_labels(image)
        except (SandboxError, FileNotFoundError) as exc:
            report(False, str(exc))
            good = False
            continue
        report(True, f"image {image} present")
        try:
            fresh = labels.get("sandbox_kernel.agent_hash") == agent_hash()
        except FileNotFoundError:
            fresh = True  # no build files installed: nothing to compare with
        report(fresh, f"image {image} matches this agent" if fresh else
               f"image {image} was built from other agent sources: re{build_hint(image)}")
    return good


def doctor_engine(backend: Backend, runtime: str | None, report: Report) -> bool:
    """Engine facts, the refusal where limits cannot hold, and the runtime's registration."""
    try:
        v = backend.versions()
    except SandboxError as exc:
        report(False, str(exc))
        return False
    report(True, f"{v['summary']} at {v['address']}")
    try:
        traits = backend.check_runtime(runtime)
    except SandboxError as exc:
        report(False, str(exc))
        return False
    notes = [] if traits.live_update else ["limits cannot change on a running sandbox"]
    if not traits.cgroup_files:
        notes.append("no cgroup files inside")
    report(True, f"runtime {runtime or v['runtime'] + ' (the default)'} is registered "
                 f"({traits.kind}{': ' + '; '.join(notes) if notes else ''})")
    return True


def round_trip(backend: Backend, image: str, runtime: str | None, report: Report) -> None:
    from .sandbox.manager import SandboxManager

    try:
        t0 = time.perf_counter()
        with SandboxManager(image=image, cleanup_interval=0, backend=backend,
                            runtime=runtime) as manager:
            session = manager.open_session()
            started = (time.perf_counter() - t0) * 1000
            result = session.execute_command(["python3", "-c", "print(1+1)"])
            node = session.execute_command(["node", "-e", "console.log(process.version)"])
        report(result.stdout.strip() == "2",
               f"sandbox starts ({started:.0f} ms) and runs Python: {result.stdout.strip()!r}")
        report(node.exit_code == 0, f"Node.js in the sandbox: {node.stdout.strip()!r}")
    except SandboxError as exc:
        report(False, f"a sandbox could not run: {exc}")


def cmd_doctor(args: argparse.Namespace, backend: Backend, runtime: str | None) -> int:
    from . import __version__

    ok = True

    def report(good: bool, text: str) -> None:
        nonlocal ok
        ok = ok and good
        print(f"{'ok ' if good else 'FAIL'}  {text}")

    print(f"sandbox-kernel {__version__}, agent protocol {PROTOCOL_VERSION}")
    specs = sandbox_specs()
    check_specs(specs, report)
    files, configs = kernel_configs(specs)
    check_configs(files, configs, report)
    images = [args.image] if args.image else list(dict.fromkeys(c.image for c in configs))
    if not doctor_engine(backend, runtime, report):
        return 1
    if not check_images(backend, images, report):
        return 1
    round_trip(backend, images[0], runtime, report)
    print("all checks passed" if ok else "some checks failed")
    return 0 if ok else 1
