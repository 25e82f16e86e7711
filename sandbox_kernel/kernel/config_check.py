"""Checking the kernel's configuration so that no mistake in it kills the kernel.

Each `c.Sandbox` setting is checked on its own. A bad value is left out (its default
stands in) and becomes one line naming the file that set it; such a problem is fatal: no
sandbox starts and every cell reports it, because the limits or policies would otherwise
not be the ones the administrator wrote. An unknown setting only warns, with a "did you
mean" (docs/architecture.md, "Configuration").
"""

from __future__ import annotations

import copy
import difflib
from dataclasses import dataclass
from typing import Any

from traitlets import TraitError
from traitlets.config import Config
from traitlets.config.loader import DeferredConfig

from ..errors import LimitError
from ..sandbox.spec import RULES, Limits
from ..sandbox.units import parse_size
from .config import Sandbox
from .config_sources import ConfigSources

#: Limits with an administrator's ceiling (`max_<name>`).
CEILINGS = ("memory", "cpus", "pids", "timeout", "cpu_time", "output")
FIX = "; no sandbox starts until it is fixed (then restart the kernel)"


@dataclass(frozen=True)
class ConfigProblem:
    """One line for the user; fatal problems keep every sandbox from starting."""

    text: str
    fatal: bool


@dataclass(frozen=True)
class CheckedSettings:
    """Settings safe to use (bad values replaced by defaults) and what was wrong."""

    settings: Sandbox
    problems: tuple[ConfigProblem, ...] = ()

    @property
    def fatal(self) -> tuple[str, ...]:
        return tuple(p.text for p in self.problems if p.fatal)

    @property
    def warnings(self) -> tuple[str, ...]:
        return tuple(p.text for p in self.problems if not p.fatal)


def check_settings(config: Config, sources: ConfigSources | None = None,
                   known_sections: tuple[str, ...] = ()) -> CheckedSettings:
    """The Sandbox these settings describe, and a problem for each one that is wrong."""
    checker = _Checker(sources or ConfigSources())
    problems = [ConfigProblem(f"[sandbox] {text}{FIX}", True)
                for text in checker.sources.failures]
    problems += checker.sections(config, known_sections)
    section = config["Sandbox"] if config._has_section("Sandbox") else Config()
    kept, found = checker.values(section)
    problems += found
    full = copy.deepcopy(config)
    full["Sandbox"] = kept
    settings = Sandbox(config=full)
    problems += checker.limits(settings)
    problems += checker.install_size(settings)
    return CheckedSettings(settings, tuple(problems))


def shown(value: Any) -> str:
    """A config value as the user wrote it, kept short."""
    if isinstance(value, DeferredConfig):
        value = str(getattr(value, "s", value))
    return repr(value)[:60]


class _Checker:
    def __init__(self, sources: ConfigSources) -> None:
        self.sources = sources
        self.traits = Sandbox.class_traits(config=True)

    def where(self, name: str) -> str:
        return self.sources.where("Sandbox", name) or "the default"

    def problem(self, name: str, what: str, fatal: bool = True) -> ConfigProblem:
        return ConfigProblem(f"[sandbox] {self.where(name)}: {what}{FIX if fatal else ''}",
                             fatal)

    def over(self, name: str, value: Any, settings: Sandbox, top: str) -> ConfigProblem:
        """A default past its ceiling: named where it was set, else where the ceiling was."""
        key = "max_" + name
        written = f"c.Sandbox.{name} = {value!r}" if self.sources.where("Sandbox", name) \
            else f"c.Sandbox.{name} (default {value!r})"
        where = self.sources.where("Sandbox", name) or self.where(key)
        return ConfigProblem(
            f"[sandbox] {where}: {written} is over the ceiling c.Sandbox.{key} = "
            f"{getattr(settings, key)!r} ({self.where(key)}); lower it to at most {top}, or "
            f"raise c.Sandbox.{key}{FIX}", True)

    def sections(self, config: Config, known: tuple[str, ...]) -> list[ConfigProblem]:
        """A section that is not a class but looks like 'Sandbox' (c.SandBox.memory)."""
        out = []
        for key in config:
            if key in known or key == "Sandbox" or not config._has_section(key):
                continue
            if difflib.get_close_matches(key, ["Sandbox"], n=1, cutoff=0.75):
                where = self.sources.where(key) or "the configuration"
                out.append(ConfigProblem(f"[sandbox] {where}: c.{key} is not a section of "
                                         "the sandbox kernel and is ignored; did you mean "
                                         "c.Sandbox?", False))
        return out

    def values(self, section: Config) -> tuple[Config, list[ConfigProblem]]:
        """The settings that are known and of the right type, and a problem for the rest."""
        kept, problems = Config(), []
        for name, value in section.items():
            if isinstance(value, Config):
                continue  # a nested section: traitlets ignores it too
            if name not in self.traits:
                problems.append(self.problem(name, self.unknown(name), fatal=False))
                continue
            try:
                Sandbox(config=Config({"Sandbox": {name: copy.deepcopy(value)}}))
            except (TraitError, ValueError, TypeError):  # or a command-line string that fails
                expected = self.traits[name].info()
                problems.append(self.problem(
                    name, f"c.Sandbox.{name} = {shown(value)} is not valid (expected "
                          f"{expected})"))
                continue
            kept[name] = value
        return kept, problems

    def unknown(self, name: str) -> str:
        text = f"c.Sandbox.{name} is not a setting of the sandbox kernel and is ignored"
        close = difflib.get_close_matches(name, list(self.traits), n=3)
        if close:
            text += "; did you mean " + " or ".join(f"c.Sandbox.{c}" for c in close) + "?"
        return text

    def limits(self, settings: Sandbox) -> list[ConfigProblem]:
        """Ceilings that do not parse, then defaults that do not parse or pass a ceiling."""
        problems = []
        for name in CEILINGS:
            key = "max_" + name
            try:
                Limits.widest().changed(None, **{name: getattr(settings, key)})
            except LimitError as exc:
                problems.append(self.problem(key, self.invalid(
                    key, getattr(settings, key), exc, name)))
                setattr(settings, key, self.traits[key].default_value)
        ceilings = settings.ceilings()
        for name in RULES:
            problem = self.limit(settings, name, ceilings)
            if problem is not None:
                problems.append(problem)
        return problems

    def limit(self, settings: Sandbox, name: str, ceilings: Limits) -> ConfigProblem | None:
        value = getattr(settings, name)
        try:
            Limits().changed(ceilings, **{name: value})
            return None
        except LimitError as exc:
            error = exc
        top = RULES[name].show(getattr(ceilings, name))
        try:
            Limits().changed(None, **{name: value})
        except LimitError:
            problem = self.problem(name, self.invalid(name, value, error))
        else:
            problem = self.over(name, value, settings, top)
        default = self.traits[name].default_value
        try:
            Limits().changed(ceilings, **{name: default})
        except LimitError:
            default = top  # even the default is over a lowered ceiling
        setattr(settings, name, default)
        return problem

    def invalid(self, name: str, value: Any, exc: LimitError, base: str = "") -> str:
        reason = str(exc)
        base = base or name
        for prefix in (base + ": ", base.replace("_", "-") + ": "):
            reason = reason.removeprefix(prefix)
        return f"c.Sandbox.{name} = {shown(value)} is not valid: {reason}"

    def install_size(self, settings: Sandbox) -> list[ConfigProblem]:
        value = settings.install_max_size
        try:
            parse_size(value, "install_max_size", 1, 1 << 40)
        except LimitError as exc:
            settings.install_max_size = self.traits["install_max_size"].default_value
            return [self.problem("install_max_size", self.invalid("install_max_size", value,
                                                                  exc))]
        return []

