"""The administrator's rules for live installs: where packages come from, which may come,
and how much (docs/architecture.md, "Packages").

Every package of a resolution is checked, not only the ones the user named: a denied
dependency refuses the whole install, naming the rule and its reason.
"""

from __future__ import annotations

import fnmatch
import functools
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from ..errors import InstallError
from .units import MiB, human_size

PYPI = "https://pypi.org/simple"
NPM_REGISTRY = "https://registry.npmjs.org/"
_PIP_KEYS = (":env:.", "download.", "install.", "global.")


@dataclass(frozen=True)
class Rule:
    """One deny-list entry: a name pattern (fnmatch, on canonical names) and why."""

    pattern: str
    reason: str = ""

    @classmethod
    def parse(cls, text: str) -> Rule:
        pattern, _, reason = text.partition(":")
        return cls(pattern.strip().lower(), reason.strip())


@dataclass(frozen=True)
class ToolPolicy:
    """The allow-list and deny-list of one package tool."""

    tool: str  # "pip" or "npm"
    allow: tuple[str, ...] = ("*",)
    deny: tuple[Rule, ...] = ()

    def check(self, names: Iterable[str], requested: Iterable[str] = ()) -> None:
        """InstallError(kind=policy) for the first name the rules refuse."""
        wanted = sorted(set(requested))
        for name in names:
            why = self.refusal(name)
            if why:
                dep = "" if name in wanted or not wanted else \
                    f" (a dependency of {', '.join(wanted[:3])})"
                raise InstallError(f"{name}{dep} is not allowed by the policy: {why}", "policy")

    def _norm(self, text: str) -> str:
        """pip names compare canonically (Scikit_Learn is scikit-learn); npm's as given."""
        return re.sub(r"[-_.]+", "-", text).lower() if self.tool == "pip" else text.lower()

    def refusal(self, name: str) -> str:
        name = self._norm(name)
        for rule in self.deny:
            if fnmatch.fnmatchcase(name, self._norm(rule.pattern)):
                base = f"Sandbox.{self.tool}_deny lists {rule.pattern!r}"
                return f"{rule.reason} ({base})" if rule.reason else \
                    f"the administrator's deny-list refuses it ({base})"
        if not any(fnmatch.fnmatchcase(name, self._norm(p)) for p in self.allow):
            shown = ", ".join(self.allow[:5]) or "nothing"
            return f"it is not on the administrator's allow-list (Sandbox.{self.tool}_allow: " \
                f"{shown})"
        return ""


@dataclass(frozen=True)
class InstallPolicy:
    """Indexes, rules and the size cap of one kernel (or library caller)."""

    pip_index_url: str = ""
    pip_extra_index_urls: tuple[str, ...] = ()
    npm_registry: str = ""
    pip: ToolPolicy = field(default_factory=lambda: ToolPolicy("pip"))
    npm: ToolPolicy = field(default_factory=lambda: ToolPolicy("npm"))
    #: Bytes fetched into one sandbox, all installs together.
    max_total: int = 512 * MiB

    def indexes(self) -> tuple[str, tuple[str, ...]]:
        """The index and extra indexes: the configured ones, else those of the host's pip."""
        if self.pip_index_url:
            return self.pip_index_url, self.pip_extra_index_urls
        index, extra = host_pip_indexes()
        return index, self.pip_extra_index_urls or extra

    def registry(self) -> str:
        return self.npm_registry or host_npm_registry()

    def check_size(self, used: int, adding: int) -> None:
        if used + adding > self.max_total:
            spent = f" ({human_size(used)} already installed)" if used else ""
            cap = human_size(self.max_total)
            raise InstallError(f"{human_size(adding)} to install is over the size cap of {cap} "
                               f"per sandbox{spent} (Sandbox.install_max_size)", "size")


def _pip_config(environ: Mapping[str, str]) -> dict[str, str]:
    """`pip config list` of the host's pip, as key -> value (empty if pip cannot say)."""
    env = {k: v for k, v in environ.items() if k != "PIP_REQUIRE_VIRTUALENV"}
    try:
        out = subprocess.run([sys.executable, "-m", "pip", "config", "list"], env=env,
                             capture_output=True, text=True, timeout=30, check=False).stdout
    except (OSError, subprocess.TimeoutExpired):
        return {}
    found: dict[str, str] = {}
    for line in out.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            found[key.strip()] = value.strip().strip("'\"")
    return found


def pick(config: Mapping[str, str], name: str) -> str:
    """A pip setting by pip's precedence: environment, command sections, then global."""
    return next((config[p + name] for p in _PIP_KEYS if config.get(p + name)), "")


@functools.lru_cache(maxsize=1)
def host_pip_indexes() -> tuple[str, tuple[str, ...]]:
    """The index (and extra indexes) the host's pip uses: its config and PIP_* variables."""
    config = _pip_config(os.environ)
    extra = tuple(u for u in re.split(r"\s+", pick(config, "extra-index-url")) if u)
    return pick(config, "index-url") or PYPI, extra


@functools.lru_cache(maxsize=1)
def host_npm_registry() -> str:
    """The registry the host's npm uses (its npmrc), else the npm registry."""
    try:
        out = subprocess.run(["npm", "config", "get", "registry", "--json"], capture_output=True,
                             text=True, timeout=30, check=False).stdout
        value = json.loads(out or '""')
    except (OSError, subprocess.TimeoutExpired, ValueError):
        return NPM_REGISTRY
    return value if isinstance(value, str) and value.startswith(("http://", "https://")) \
        else NPM_REGISTRY
