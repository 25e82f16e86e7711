"""A kernel's sandbox has ipykernel's environment (colour on, pagers off), and
`sandbox-kernel pool` keeps sandboxes with the same one: the pool key includes the
environment, so a pool made without it would never be claimed by a kernel."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from typing import Any

import pytest
from traitlets.config import Config

from sandbox_kernel import cli
from sandbox_kernel.kernel import launcher as launcher_module
from sandbox_kernel.kernel.launcher import NOTEBOOK_ENV, Launcher
from sandbox_kernel.sandbox import manager as manager_module
from sandbox_kernel.sandbox.pool import pool_key


class Made(Exception):
    """Raised by the stand-in manager once it has its arguments (cmd_pool would loop)."""


@pytest.fixture
def made(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[dict[str, Any]]]:
    seen: list[dict[str, Any]] = []

    def fake_manager(**kwargs: Any) -> None:
        seen.append(kwargs)
        raise Made

    for module in (manager_module, launcher_module):
        monkeypatch.setattr(module, "SandboxManager", fake_manager)
    monkeypatch.setattr(launcher_module, "make_backend", lambda **_: None)
    monkeypatch.setattr(cli, "_backend", lambda args=None: None)
    monkeypatch.delenv("SANDBOX_RUNTIME", raising=False)
    before = {n: signal.getsignal(n) for n in (signal.SIGTERM, signal.SIGINT)}
    yield seen
    for signum, handler in before.items():
        if handler is not None:
            signal.signal(signum, handler)  # cmd_pool's own handlers go


def key(kwargs: dict[str, Any]) -> str:
    return pool_key(kwargs["image"], kwargs["limits"], kwargs["env"], kwargs["runtime"])


def test_the_cli_pool_is_claimable_by_a_default_kernel(made: list[dict[str, Any]]) -> None:
    with pytest.raises(Made):
        cli.main(["pool", "--size", "1"])
    with pytest.raises(Made):
        Launcher.from_config(Config())._get_manager()
    pool, kernel = made
    assert key(pool) == key(kernel)
    assert NOTEBOOK_ENV.items() <= kernel["env"].items()


def test_sandbox_env_overrides_the_notebook_defaults(made: list[dict[str, Any]]) -> None:
    config = Config()
    config.Sandbox.env = {"TERM": "dumb"}
    with pytest.raises(Made):
        Launcher.from_config(config)._get_manager()
    assert made[0]["env"]["TERM"] == "dumb" and made[0]["env"]["PAGER"] == "cat"
