"""`%sandbox` commands: run in the kernel process, against the kernel's sandbox session.

A notebook is untrusted input, and these commands act on the host, so every command has
a strict argparse grammar (no shell, names checked, paths confined), and anything else is
refused with one line. Results are published as text/plain plus escaped text/html.
"""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from ..errors import LimitError, UsageError
from ..sandbox.spec import LIVE_LIMITS, RULES
from ..sandbox.units import format_size
from .file_commands import FileCommands
from .health import health_bundle
from .magic_args import MagicExit, kv, magic_parser, table
from .pip_commands import PackageCommands

if TYPE_CHECKING:
    from ..sandbox.installs import Installs
    from ..sandbox.session import AsyncSession
    from .cells import HostCommand
    from .kernel import SandboxKernel

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}", re.ASCII)
_VAR_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}", re.ASCII)
_RESERVED_ENV = {"PATH", "HOME", "SANDBOX_TASK", "SANDBOX_WORKER_FDS", "LD_PRELOAD",
                 "LD_LIBRARY_PATH", "PYTHONPATH", "PYTHONHOME"}
SECRETS_DIR = "/tmp/.secrets"


class Commands:
    """The `%sandbox` subcommands of one kernel."""

    def __init__(self, kernel: SandboxKernel, installs: Callable[[], Installs]) -> None:
        self.kernel = kernel
        self.files = FileCommands(self)
        self.packages = PackageCommands(self, installs)
        self.handlers: dict[str, tuple[str, Callable[[list[str], str | None],
                                                     Awaitable[None]]]] = {
            "help": ("show this help", self.cmd_help),
            "limits": ("show or change limits: limits memory=256m cpus=0.5 ...",
                       self.cmd_limits),
            "status": ("session, image, container, limits, idle time, network",
                       self.cmd_status),
            "health": ("memory, CPU, processes and uptime", self.cmd_health),
            "files": ("ls, cat, rm, mkdir, write, upload, download", self.files.cmd_files),
            "upload": ("same as: files upload LOCAL [REMOTE]", self.files.cmd_upload),
            "download": ("same as: files download REMOTE [LOCAL]", self.files.cmd_download),
            "write": ("%%sandbox write PATH: write the cell's body to PATH",
                      self.files.cmd_write),
            "restart": ("replace the sandbox with a fresh, empty one (--interpreter: only "
                        "the interpreter)", self.cmd_restart),
            "pip": ("pip install PACKAGE ...: fetched by the host, installed here",
                    self.packages.cmd_pip),
            "npm": ("npm install PACKAGE ...: fetched by the host, installed here",
                    self.packages.cmd_npm),
            "env": ("set variables for later cells: env NAME=VALUE ...", self.cmd_env),
            "secret": ("env NAME from a password prompt, as a file only the sandbox reads",
                       self.cmd_secret),
            "network": ("show the network mode (always none unless the admin allows)",
                        self.cmd_network),
            "put": ("copy a JSON-serialisable Python variable into Node", self.cmd_put),
            "get": ("copy a JSON-serialisable Node variable into Python", self.cmd_get),
        }

    # ----- dispatch -----------------------------------------------------------------------
    async def run_all(self, commands: tuple[HostCommand, ...]) -> dict[str, Any]:
        for cmd in commands:
            await self.run(cmd)
        return {"status": "ok"}

    async def run(self, cmd: HostCommand) -> None:
        argv = list(cmd.argv)
        if not argv:
            argv = ["help"]
        name, rest = argv[0], argv[1:]
        entry = self.handlers.get(name)
        if entry is None:
            raise UsageError(f"unknown %sandbox subcommand {name[:40]!r}; try %sandbox help "
                             f"(subcommands: {', '.join(self.handlers)})")
        if cmd.body is not None and name not in ("write", "files"):
            raise UsageError(f"%%sandbox {name} is a line magic; use %sandbox {name} "
                             "(only %%sandbox write takes a cell body)")
        try:
            await entry[1](rest, cmd.body)
        except MagicExit as done:
            if done.error:
                raise UsageError(done.text.strip()) from None
            self.show({"text/plain": done.text})

    def show(self, data: dict[str, str], display_id: str | None = None,
             update: bool = False) -> None:
        content: dict[str, Any] = {"data": data, "metadata": {}, "transient": {}}
        if display_id:
            content["transient"] = {"display_id": display_id}
        self.kernel.publish("update_display_data" if update else "display_data", content)

    def say(self, text: str) -> None:
        self.kernel.stream("stdout", text if text.endswith("\n") else text + "\n")

    async def session(self) -> AsyncSession:
        return await self.kernel.sandbox()

    # ----- help, limits, status, health ---------------------------------------------------
    async def cmd_help(self, argv: list[str], body: str | None) -> None:
        p = magic_parser("%sandbox help", "Show the %sandbox subcommands.")
        p.parse_args(argv)
        lines = ["%sandbox SUBCOMMAND [ARGS]   (run in the kernel, not in the sandbox;",
                 "                             %sandbox SUBCOMMAND --help for details)", ""]
        lines += [f"  {name:<9} {desc}" for name, (desc, _) in self.handlers.items()]
        lines += ["", "Cell magics: %%python (default), %%node, %%bash / %%sh, "
                  "%%sandbox write PATH"]
        self.show({"text/plain": "\n".join(lines)})

    def _limit_rows(self, session: AsyncSession | None) -> list[tuple[str, str, str]]:
        lim = session.limits if session is not None else self.kernel.limits
        ceil = self.kernel.ceilings
        rows = []
        for name in ("memory", "cpus", "pids", "timeout", "cpu_time", "output", "file_size",
                     "sandbox_size", "tmp_size", "packages_size"):
            rule = RULES[name]
            live = name in LIVE_LIMITS
            rows.append((name.replace("_", "-"), rule.show(getattr(lim, name)),
                         f"{rule.show(rule.lo)} .. {rule.show(getattr(ceil, name))}"
                         if live else "fixed at start"))
        return rows

    async def cmd_limits(self, argv: list[str], body: str | None) -> None:
        p = magic_parser("%sandbox limits",
                    "Show limits, or change them live without losing state. Keys: "
                    + ", ".join(k.replace("_", "-") for k in LIVE_LIMITS)
                    + ". Sizes take k/m/g, durations s/m/h.")
        p.add_argument("changes", nargs="*", metavar="KEY=VALUE")
        args = p.parse_args(argv)
        session = await self.session()
        if args.changes:
            changes: dict[str, str] = {}
            for item in args.changes:
                key, sep, value = item.partition("=")
                key = key.strip().replace("-", "_")
                if not sep or not key:
                    raise UsageError(f"%sandbox limits: expected KEY=VALUE, got {item[:40]!r}")
                if key not in LIVE_LIMITS:
                    known = ", ".join(k.replace("_", "-") for k in LIVE_LIMITS)
                    raise UsageError(f"%sandbox limits: {key[:30]!r} cannot be changed here; "
                                     f"live limits are: {known}")
                changes[key] = value
            try:
                new = await session.update_limits(**changes)
            except LimitError as exc:
                raise UsageError(f"%sandbox limits: {exc}") from None
            self.kernel.launcher.limits = new  # a restarted or reclaimed sandbox keeps them
        rows = self._limit_rows(session)
        self.show(table(("limit", "value", "allowed"), rows))

    async def cmd_status(self, argv: list[str], body: str | None) -> None:
        magic_parser("%sandbox status", "Show what this kernel's sandbox is.").parse_args(argv)
        session = await self.session()
        idle = time.time() - session.last_activity_at
        lim = session.limits
        self.show(kv([
            ("session", session.session_id),
            ("image", session.image),
            ("container", session.container_id[:12]),
            ("limits", f"memory {format_size(lim.memory)}, cpus {lim.cpus:g}, pids {lim.pids}, "
                       f"timeout {lim.timeout:g}s, cpu-time {lim.cpu_time:g}s"),
            ("idle", f"{idle:.0f} s (reclaimed after "
                     f"{self.kernel.settings.idle_timeout:g} s)"
             if self.kernel.settings.idle_timeout > 0 else f"{idle:.0f} s"),
            ("network", "none"),
            ("python", str(session.agent.get("python", "?"))),
        ]))

    async def cmd_health(self, argv: list[str], body: str | None) -> None:
        p = magic_parser("%sandbox health", "Memory, CPU, processes and uptime of the sandbox.")
        p.add_argument("--watch", action="store_true", help="a live widget where widgets render")
        args = p.parse_args(argv)
        session = await self.session()
        health = await session.health()
        if args.watch:
            self.kernel.monitor.show(health)
            return
        self.show(health_bundle(health))

    async def cmd_restart(self, argv: list[str], body: str | None) -> None:
        p = magic_parser("%sandbox restart", "Replace the sandbox with a fresh one: variables, "
                         "/sandbox files and installed packages are lost.")
        p.add_argument("--interpreter", nargs="?", const="python", choices=("python", "node"),
                       help="restart only this interpreter (default python): its variables "
                       "are lost, files and installed packages stay")
        args = p.parse_args(argv)
        if args.interpreter:
            session = await self.session()
            await session.restart_interpreter(args.interpreter)
            self.say(f"[sandbox] the {args.interpreter} interpreter was restarted: its "
                     "variables are gone; /sandbox files and installed packages stay")
            return
        session = await self.kernel.restart_sandbox()
        self.say(f"[sandbox] fresh sandbox {session.session_id} started; state was reset "
                 "(installed packages too)")

    # ----- environment and secrets --------------------------------------------------------
    @staticmethod
    def _env_name(name: str) -> str:
        if not _ENV_NAME.fullmatch(name):
            raise UsageError(f"invalid variable name {name[:40]!r}: use letters, digits and _")
        if name in _RESERVED_ENV or name.startswith(("SANDBOX_", "LD_")):
            raise UsageError(f"{name} is reserved and cannot be set")
        return name

    async def cmd_env(self, argv: list[str], body: str | None) -> None:
        p = magic_parser("%sandbox env", "Set environment variables for later cells and commands.")
        p.add_argument("assignments", nargs="*", metavar="NAME=VALUE")
        p.add_argument("--unset", action="append", default=[], metavar="NAME")
        args = p.parse_args(argv)
        env: dict[str, str | None] = {}
        for item in args.assignments:
            name, sep, value = item.partition("=")
            if not sep:
                raise UsageError(f"%sandbox env: expected NAME=VALUE, got {item[:40]!r}")
            if "\0" in value or len(value) > 65536:
                raise UsageError(f"%sandbox env: the value of {name[:40]} is not allowed")
            env[self._env_name(name)] = value
        for name in args.unset:
            env[self._env_name(name)] = None
        if not env:
            raise UsageError("%sandbox env: give NAME=VALUE or --unset NAME")
        session = await self.session()
        await session.set_env(env)
        names = ", ".join(f"{k}" + (" (unset)" if v is None else "") for k, v in env.items())
        self.say(f"[sandbox] environment updated: {names}")

    async def cmd_secret(self, argv: list[str], body: str | None) -> None:
        p = magic_parser("%sandbox secret",
                    "Ask for a value with a password prompt and store it in "
                    f"{SECRETS_DIR}/NAME (mode 0600, tmpfs) inside the sandbox; the variable "
                    "NAME_FILE points at it. The value is never echoed, never on a command "
                    "line, never in docker inspect.")
        p.add_argument("name", metavar="NAME")
        args = p.parse_args(argv)
        name = self._env_name(args.name)
        value = await self.kernel.ask_password(f"Value for {name} (stored only inside the "
                                               "sandbox): ")
        if value is None:
            raise UsageError("%sandbox secret: this frontend cannot prompt for input "
                             "(batch runs have no stdin)")
        session = await self.session()
        path = f"{SECRETS_DIR}/{name}"

        await session.files.mkdir(SECRETS_DIR, parents=True)
        await session.files.write(path, value)
        await session.execute_command(["chmod", "0700", SECRETS_DIR])
        await session.execute_command(["chmod", "0600", path])
        await session.set_env({f"{name}_FILE": path})
        self.say(f"[sandbox] secret stored in {path}; read it from the file named by "
                 f"${name}_FILE")

    async def cmd_network(self, argv: list[str], body: str | None) -> None:
        p = magic_parser("%sandbox network", "Show the sandbox's network mode.")
        p.add_argument("mode", nargs="?", choices=("on", "off", "none", "bridge", "host"))
        args = p.parse_args(argv)
        if args.mode in (None, "off", "none"):
            self.say("[sandbox] network: none (only the loopback interface exists)")
            return
        raise UsageError("%sandbox network: turning the network on is not allowed by this "
                         "kernel's configuration (sandboxes have no network)")

    # ----- Python <-> Node ----------------------------------------------------------------
    def _var(self, name: str) -> str:
        if not _VAR_NAME.fullmatch(name):
            raise UsageError(f"invalid variable name {name[:40]!r}")
        return name

    async def _transfer_var(self, argv: list[str], source: str, target: str) -> None:
        p = magic_parser(f"%sandbox {'put' if source == 'python' else 'get'}",
                    f"Copy a JSON-serialisable variable from {source} to {target}.")
        p.add_argument("name")
        args = p.parse_args(argv)
        name = self._var(args.name)
        session = await self.session()
        text = await session.get_var(source, name)
        if len(text) > 64 * 2**20:
            raise UsageError(f"{name} is over 64 MB of JSON; too large to copy")
        await session.set_var(target, name, text)
        self.say(f"[sandbox] {name} copied from {source} to {target} ({len(text)} bytes of JSON)")

    async def cmd_put(self, argv: list[str], body: str | None) -> None:
        await self._transfer_var(argv, "python", "node")

    async def cmd_get(self, argv: list[str], body: str | None) -> None:
        await self._transfer_var(argv, "node", "python")

