"""Live installs with the network off (issue 11, part 3), through jupyter_client.

A kernel whose index and npm registry are a local server on 127.0.0.1 (tests/package_index.py):
`%pip install` of a pure-Python package and of one with a compiled extension, imported;
`npm install` in a Node cell, require()d; a denied package refused with the policy's reason;
an interpreter restart keeps them, `%sandbox restart` clears them; still only `lo` inside;
the one-line hint the first time the network fails.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import package_index
import pytest

from .conftest import KernelHandle, Result

pytestmark = pytest.mark.docker

DENY = "colorama: the course uses plain output"


@pytest.fixture(scope="module")
def index() -> Iterator[package_index.Index]:
    with package_index.serve() as idx:
        yield idx


@pytest.fixture(scope="module")
def k(index: package_index.Index, kernel_cwd: Path, tmp_path_factory: pytest.TempPathFactory
      ) -> Iterator[KernelHandle]:
    cache = tmp_path_factory.mktemp("install-cache")
    env = {**os.environ, "SANDBOX_INSTALL_CACHE": str(cache)}
    h = KernelHandle("sandbox", cwd=kernel_cwd, env=env, extra_arguments=[
        f"--Sandbox.pip_index_url={index.simple}", f"--Sandbox.npm_registry={index.npm}",
        f"--Sandbox.pip_deny={DENY}", "--Sandbox.install_max_size=2m"])
    try:
        yield h
    finally:
        h.close()


def ok(k: KernelHandle, code: str, timeout: float = 120) -> Result:
    r = k.execute(code, timeout=timeout)
    assert r.status == "ok", r
    return r


def test_pip_installs_pure_and_compiled_packages_that_import(k: KernelHandle) -> None:
    r = ok(k, "%pip install tabulate msgpack")
    out = r.text("stdout")
    assert "Resolving tabulate, msgpack" in out and "Fetching msgpack-1.2.4-cp311" in out
    assert "Successfully installed msgpack-1.2.4 tabulate-0.10.0" in out, out
    r = ok(k, "import tabulate, msgpack\nfrom msgpack import _cmsgpack\n"
              "print(tabulate.tabulate([[1, 2]]))\nprint(_cmsgpack.__file__)\n"
              "print(msgpack.unpackb(msgpack.packb({'a': [1, 2]})))")
    lines = r.text("stdout").splitlines()
    assert lines[-2].startswith("/opt/sandbox-packages/python/msgpack/_cmsgpack.cpython-311")
    assert lines[-2].endswith(".so") and lines[-1] == "{'a': [1, 2]}"
    # subprocesses see them too, and cell code cannot write where they live
    r = ok(k, "!python -c 'import tabulate; print(tabulate.__version__)'\n"
              "!touch /opt/sandbox-packages/python/x; touch /tmp/y; ls /sys/class/net")
    assert r.text().split()[0] == "0.10.0"
    assert "Permission denied" in r.text() and r.text().split()[-1] == "lo"


def test_again_is_already_satisfied_and_mixed_cells_run_in_order(k: KernelHandle) -> None:
    r = ok(k, "x = 41\n!pip install -q tabulate\nprint(x + 1)\n%pip install tabulate\n"
              "import tabulate\nprint(tabulate.__version__)")
    assert r.text("stdout").splitlines() == ["42", "Requirement already satisfied: tabulate "
                                             "(0.10.0)", "0.10.0"], r
    # the image's own packages too (the local index does not even have them)
    r = ok(k, "%pip install requests 'numpy>=2'")
    assert r.text("stdout").splitlines() == ["Requirement already satisfied: requests (2.34.2)",
                                             "Requirement already satisfied: numpy (2.4.6)"], r


def test_requirements_files_shell_cells_and_what_is_refused(k: KernelHandle) -> None:
    ok(k, "%%sandbox write requirements.txt\n# for the course\ntabulate>=0.9\n")
    r = ok(k, "%pip install -r requirements.txt")
    assert r.text("stdout").strip() == "Requirement already satisfied: tabulate (0.10.0)"
    r = ok(k, "%%bash\npip install msgpack 2>&1 | tail -1")
    assert "Requirement already satisfied: msgpack (1.2.4)" in r.text("stdout")
    assert "[sandbox] not run: | tail -1" in r.text("stderr")
    r = k.execute("try:\n    import nothing_here\nexcept ImportError:\n    %pip install x")
    assert r.status == "error" and "inside a block" in r.error_text
    r = ok(k, "%pip install -i https://example.org/simple tabulate")
    assert "administrator's index only" in r.text("stderr")


def test_npm_install_in_a_node_cell_then_require(k: KernelHandle) -> None:
    r = ok(k, "%%node\nnpm install is-odd\nconsole.log(require('is-odd')(3), "
              "require.resolve('is-odd'))")
    out = r.text("stdout")
    assert "added is-odd@3.0.1 (1 dependencies)" in out, out
    assert out.splitlines()[-1] == "true /opt/sandbox-packages/node/node_modules/is-odd/index.js"


def test_cells_cannot_reach_into_an_install(k: KernelHandle) -> None:
    """What a cell sets (variables, files) never reaches the installer; the staging folder
    and the package tmpfs are out of its reach, and nothing there is setuid or a device."""
    ok(k, "%%sandbox write /tmp/evil.js\nrequire('fs').writeFileSync('/tmp/pwned', 'x')\n")
    ok(k, "%sandbox env NODE_OPTIONS=--require=/tmp/evil.js npm_config_registry=http://x")
    try:
        r = ok(k, "%%node\nnpm install is-number\nconsole.log(require('is-number')(1))")
        assert r.text("stdout").splitlines()[-1] == "true", r
    finally:
        ok(k, "%sandbox env --unset NODE_OPTIONS --unset npm_config_registry")
    r = ok(k, "import os\nprint(os.path.exists('/tmp/pwned'))\n"
              "try:\n    os.listdir('/opt/sandbox-packages/.staging')\n"
              "except PermissionError:\n    print('no staging')\n"
              "print([l.split()[3] for l in open('/proc/mounts') "
              "if l.split()[1] == '/opt/sandbox-packages'][0])")
    exists, staging, opts = r.text("stdout").splitlines()
    assert (exists, staging) == ("False", "no staging")
    assert {"nosuid", "nodev"} <= set(opts.split(",")) and "noexec" not in opts


def test_denied_package_refused_with_the_policys_reason(k: KernelHandle) -> None:
    r = ok(k, "%pip install colorama")
    err = r.text("stderr").strip()
    assert err == ("ERROR: colorama is not allowed by the policy: the course uses plain output "
                   "(Sandbox.pip_deny lists 'colorama')"), err
    r = k.execute("%sandbox pip install colorama")
    assert r.status == "error" and "the course uses plain output" in r.error_text


def test_not_found_is_one_line(k: KernelHandle, index: package_index.Index) -> None:
    r = ok(k, "%pip install no-such-package-zzz")
    assert r.text("stderr").strip() == ("ERROR: no-such-package-zzz was not found on the "
                                        f"package index {index.simple}"), r


def test_interpreter_restart_keeps_packages(k: KernelHandle) -> None:
    r = k.execute("import os; os._exit(3)")
    assert r.status == "error"
    ok(k, "import tabulate, msgpack")
    ok(k, "%sandbox restart --interpreter")
    ok(k, "import tabulate, msgpack")
    r = ok(k, "%%node\nconsole.log(require('is-odd')(2))")
    assert r.text("stdout").strip() == "false"


def test_network_failure_hint_once(k: KernelHandle) -> None:
    code = "import socket\nsocket.getaddrinfo('pypi.org', 443)"
    r = k.execute(code)
    assert r.status == "error" and "Temporary failure in name resolution" in r.error_text
    hint = [m.content["text"] for m in r.streams("stderr") if "no network" in m.content["text"]]
    assert len(hint) == 1 and "%pip install" in hint[0] and hint[0].count("\n") == 1, hint
    r = k.execute(code)
    assert "no network" not in r.text("stderr")


def test_sandbox_restart_clears_packages(k: KernelHandle) -> None:
    ok(k, "%sandbox restart")
    r = k.execute("import tabulate")
    assert r.status == "error" and "ModuleNotFoundError" in r.error_text
    r = k.execute("%%node\nrequire('is-odd')")
    assert r.status == "error" and "is-odd" in r.error_text
    r = ok(k, "!ls /sys/class/net")
    assert r.text().split() == ["lo"]
