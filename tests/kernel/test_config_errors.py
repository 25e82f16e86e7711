"""Configuration mistakes never kill the kernel: it starts, and every cell says what is wrong.

Each kernel is started through jupyter_client with a config file in a temporary
JUPYTER_CONFIG_DIR, as an administrator would write it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from .conftest import KernelHandle, containers_of, wait_until

pytestmark = pytest.mark.docker

Start = Callable[..., KernelHandle]
MISSING = "sandbox-kernel:no-such-image-for-config-tests"


def kernel_with(start_kernel: Start, tmp_path: Path, config: str, **env: str) -> tuple[
        KernelHandle, Path]:
    confdir = tmp_path / "jupyter-config"
    confdir.mkdir()
    path = confdir / "sandbox_kernel_config.py"
    path.write_text(config)
    return start_kernel(env={**os.environ, "JUPYTER_CONFIG_DIR": str(confdir), **env}), path


@pytest.mark.parametrize(("config", "names"), [
    ('c.Sandbox.memory = "lots"', ["c.Sandbox.memory = 'lots'"]),
    ('c.Sandbox.idle_timeout = "soon"', ["c.Sandbox.idle_timeout = 'soon'"]),
    ('c.Sandbox.language = "ruby"', ["c.Sandbox.language = 'ruby'"]),
    ('c.Sandbox.memory = "64g"', ["c.Sandbox.memory = '64g'", "c.Sandbox.max_memory"]),
])
def test_a_bad_value_starts_the_kernel_and_every_cell_names_it(
        start_kernel: Start, tmp_path: Path, config: str, names: list[str]) -> None:
    k, path = kernel_with(start_kernel, tmp_path, config + "\n")
    for _ in range(2):
        r = k.execute("1 + 1")
        assert r.status == "error", r
        [line] = r.error_text.splitlines()
        assert str(path) in line and all(n in line for n in names), line
    assert k.alive()
    assert containers_of(k.pid) == []  # nothing started with settings that are not the admin's
    info = k.request("kernel_info")
    assert info["status"] == "ok"


def test_an_unknown_setting_warns_in_every_cell_and_the_cell_runs(
        start_kernel: Start, tmp_path: Path) -> None:
    k, path = kernel_with(start_kernel, tmp_path, 'c.Sandbox.memroy = "1g"\n')
    for _ in range(2):
        r = k.ok("6 * 7")
        assert r.results()[-1]["text/plain"] == "42"
        [line] = r.text("stderr").splitlines()
        assert line.startswith(f"[sandbox] {path}: c.Sandbox.memroy is not a setting"), line
        assert "did you mean c.Sandbox.memory" in line


def test_a_missing_configured_image_names_the_tag_and_its_build_command(
        start_kernel: Start, tmp_path: Path) -> None:
    k, _ = kernel_with(start_kernel, tmp_path, f"c.Sandbox.image = {MISSING!r}\n")
    r = k.execute("1")
    assert r.status == "error"
    assert f"'sandbox-kernel build-image --tag {MISSING}'" in r.error_text, r
    assert k.alive()


def test_no_engine_echoes_docker_host(start_kernel: Start, tmp_path: Path) -> None:
    host = f"unix://{tmp_path}/no-engine.sock"
    k, _ = kernel_with(start_kernel, tmp_path, "", DOCKER_HOST=host)
    r = k.execute("1")
    assert r.status == "error"
    assert f"DOCKER_HOST is {host!r} here" in r.error_text, r
    assert k.alive()


def test_only_the_kernels_own_config_file_is_read(start_kernel: Start, tmp_path: Path) -> None:
    """`sandbox_kernel_config.py` in a Jupyter config dir sets the limits, read alike by the
    early start and the app (one sandbox); IPython's `ipython_config.py` beside it is for
    IPython, not this kernel (the other-settings path is tests/unit/test_early_start.py)."""
    confdir = tmp_path / "jupyter-config"
    confdir.mkdir()
    (confdir / "ipython_config.py").write_text('c.Sandbox.memory = "200m"\n')
    (confdir / "sandbox_kernel_config.py").write_text('c.Sandbox.memory = "300m"\n')
    k = start_kernel(env={**os.environ, "JUPYTER_CONFIG_DIR": str(confdir)})
    r = k.ok("print(open('/sys/fs/cgroup/memory/memory.limit_in_bytes').read())")
    assert r.text("stdout").strip() == str(300 * 2**20)
    assert wait_until(lambda: len(containers_of(k.pid)) == 1, 30), containers_of(k.pid)
