"""Configuration mistakes become one line naming the file and the setting (fast tier).

Real config files in a temporary Jupyter config directory are loaded by the same loader
the kernel app uses (ConfigSources), then checked (check_settings); nothing here raises.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from traitlets.config import Config
from traitlets.config.loader import (
    DeferredConfigString,
    JSONFileConfigLoader,
    PyFileConfigLoader,
)

from sandbox_kernel.kernel.config_check import CheckedSettings, check_settings
from sandbox_kernel.kernel.config_sources import COMMAND_LINE, ConfigSources
from sandbox_kernel.sandbox.docker_connect import engine_hint
from sandbox_kernel.sandbox.image import build_hint
from sandbox_kernel.sandbox.units import MiB

LOADERS = (PyFileConfigLoader, JSONFileConfigLoader)


def checked(tmp_path: Path, text: str, cli: Config | None = None,
            json_text: str | None = None) -> tuple[CheckedSettings, Path]:
    path = tmp_path / "sandbox_kernel_config.py"
    path.write_text(text)
    if json_text is not None:
        (tmp_path / "sandbox_kernel_config.json").write_text(json_text)
    sources = ConfigSources(cli)
    merged = Config()
    for config, _ in sources.load(LOADERS, "sandbox_kernel_config", [str(tmp_path)], None):
        merged.merge(config)
    if cli is not None:
        merged.merge(cli)
    return check_settings(merged, sources, ("Sandbox", "IPKernelApp")), path


@pytest.mark.parametrize(("line", "setting", "says"), [
    ('c.Sandbox.memory = "lots"', "c.Sandbox.memory = 'lots'", "is not a size"),
    ('c.Sandbox.idle_timeout = "soon"', "c.Sandbox.idle_timeout = 'soon'", "expected a float"),
    ('c.Sandbox.language = "ruby"', "c.Sandbox.language = 'ruby'", "'python', 'node'"),
    ('c.Sandbox.cpus = "-1"', "c.Sandbox.cpus = '-1'", "is not a number"),
    ('c.Sandbox.max_pids = "many"', "c.Sandbox.max_pids = 'many'", "whole number"),
    ('c.Sandbox.install_max_size = "big"', "c.Sandbox.install_max_size", "is not a size"),
    ('c.Sandbox.allow_javascript = "no"', "c.Sandbox.allow_javascript = 'no'",
     "expected a boolean"),
])
def test_a_bad_value_is_one_fatal_line_naming_file_and_setting(
        tmp_path: Path, line: str, setting: str, says: str) -> None:
    result, path = checked(tmp_path, line + "\nc.Sandbox.pids = '30'\n")
    [text] = result.fatal
    assert "\n" not in text
    assert text.startswith(f"[sandbox] {path}: {setting}"), text
    assert says in text
    assert result.warnings == ()
    # The settings are usable: the bad value is replaced by its default, the rest stands.
    assert result.settings.limits().pids == 30
    assert result.settings.limits().memory == 512 * MiB
    result.settings.install_policy()


def test_over_the_ceiling_names_the_max_setting(tmp_path: Path) -> None:
    result, path = checked(tmp_path, 'c.Sandbox.memory = "64g"\n')
    [text] = result.fatal
    assert text.startswith(f"[sandbox] {path}: c.Sandbox.memory = '64g' is over the ceiling "
                           "c.Sandbox.max_memory = '4g' (the default)"), text
    assert "raise c.Sandbox.max_memory" in text
    assert result.settings.limits().memory == 512 * MiB


def test_a_lowered_ceiling_under_the_default_names_where_the_ceiling_is(
        tmp_path: Path) -> None:
    result, path = checked(tmp_path, 'c.Sandbox.max_memory = "256m"\n')
    [text] = result.fatal
    assert text.startswith(f"[sandbox] {path}: c.Sandbox.memory (default '512m') is over "
                           f"the ceiling c.Sandbox.max_memory = '256m' ({path})"), text
    assert result.settings.limits().memory == 256 * MiB  # held at the ceiling


def test_unknown_settings_warn_with_did_you_mean(tmp_path: Path) -> None:
    result, path = checked(tmp_path, 'c.Sandbox.memroy = "1g"\nc.Sandbox.zzz = 1\n'
                                     'c.SandBox.memory = "1g"\n')
    assert result.fatal == ()
    section, memroy, zzz = result.warnings
    assert memroy.startswith(f"[sandbox] {path}: c.Sandbox.memroy is not a setting")
    assert "did you mean c.Sandbox.memory" in memroy
    assert "did you mean" not in zzz and "c.Sandbox.zzz" in zzz
    assert section == (f"[sandbox] {path}: c.SandBox is not a section of the sandbox kernel "
                       "and is ignored; did you mean c.Sandbox?")
    assert result.settings.limits().memory == 512 * MiB


def test_the_last_file_and_the_command_line_are_named(tmp_path: Path) -> None:
    result, _ = checked(tmp_path, 'c.Sandbox.memory = "1g"\n',
                        json_text=json.dumps({"Sandbox": {"memory": "lots"}}))
    [text] = result.fatal
    assert text.startswith(f"[sandbox] {tmp_path / 'sandbox_kernel_config.json'}: "), text
    cli = Config({"Sandbox": {"timeout": DeferredConfigString("forever")}})
    other = tmp_path / "other"
    other.mkdir()
    result, _ = checked(other, "", cli=cli)
    [text] = result.fatal
    assert text.startswith(f"[sandbox] {COMMAND_LINE}: c.Sandbox.timeout = 'forever' is "
                           "not valid"), text


def test_a_config_file_that_fails_to_run_is_fatal_and_named(tmp_path: Path) -> None:
    result, path = checked(tmp_path, "c.Sandbox.memory = '1g'\nraise RuntimeError('boom')\n")
    [text] = result.fatal
    assert text.startswith(f"[sandbox] {path}: the file failed to run (RuntimeError: boom)")


def test_good_settings_have_no_problem(tmp_path: Path) -> None:
    result, _ = checked(tmp_path, 'c.Sandbox.memory = "1g"\nc.Sandbox.idle_timeout = 60\n')
    assert result.problems == ()
    assert result.settings.limits().memory == 1024 * MiB


def test_engine_hint_echoes_docker_host() -> None:
    assert "DOCKER_HOST is 'tcp://10.0.0.9:2375' here" in engine_hint(
        {"DOCKER_HOST": "tcp://10.0.0.9:2375"})
    assert "DOCKER_HOST is" not in engine_hint({})


def test_build_hint_names_the_tag() -> None:
    assert "'sandbox-kernel build-image --tag course/img:3'" in build_hint("course/img:3")
