"""Derived images against the real engine: `sandbox-kernel build-image --requirements --npm
--apt --tag` builds one FROM the sandbox image, and a kernel from the kernelspec that
`sandbox-kernel install --image` writes runs its cells there (driven by nbclient).

Packages come from PyPI, the npm registry and Debian through the host. The images, build
contexts and kernelspecs made here are removed afterwards.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from sandbox_kernel.sandbox.image import context_dir, default_image

pytestmark = [pytest.mark.docker, pytest.mark.slow]

BASE = os.environ.get("SANDBOX_TEST_IMAGE") or default_image()
TAG = f"sandbox-kernel-test/derived:{os.getpid()}"
SCRIPT = Path(sys.executable).with_name("sandbox-kernel")
SIX = "six==1.17.0 --hash=sha256:4721f391ed90541fddacab5acf947aa0d3dc7d27b2e1e8eda2be8970586c3274"


def cli(*args: str | Path, timeout: float = 900,
        **env_vars: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "SANDBOX_IMAGE"} | env_vars
    return subprocess.run([str(SCRIPT), *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env=env, check=False)


def inspect(image: str, fmt: str) -> str:
    return subprocess.run(["docker", "image", "inspect", "-f", fmt, image], capture_output=True,
                          text=True, check=True).stdout.strip()


def remove_image(tag: str) -> None:
    subprocess.run(["docker", "rmi", "-f", tag], capture_output=True, check=False)
    shutil.rmtree(context_dir(tag), ignore_errors=True)


@pytest.fixture(scope="module", autouse=True)
def _no_staging_left() -> Iterator[None]:
    """Every build here stages under a tag starting with TAG: remove what they left."""
    yield
    prefix = context_dir(TAG).name.rsplit("-", 1)[0]
    for path in context_dir(TAG).parent.glob(prefix + "*"):
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


def one_line_error(r: subprocess.CompletedProcess[str]) -> str:
    assert r.returncode == 1, r.stdout[-2000:] + r.stderr[-2000:]
    assert "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("sandbox-kernel: "), r.stderr
    return lines[0]


@pytest.fixture(scope="module")
def derived(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    reqs = tmp_path_factory.mktemp("derived") / "requirements.txt"
    reqs.write_text("# the host pins what it downloads\ntabulate==0.9.0\n")
    try:
        r = cli("build-image", "--from", BASE, "--requirements", reqs,
                "--npm", "is-number@7.0.0", "--apt", "jq", "--tag", TAG)
        assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
        assert f"Image built successfully: {TAG}" in r.stdout
        yield TAG
    finally:
        remove_image(TAG)


def test_derived_image_adds_only_its_packages(derived: str) -> None:
    labels = json.loads(inspect(derived, "{{json .Config.Labels}}"))
    base_labels = json.loads(inspect(BASE, "{{json .Config.Labels}}"))
    assert labels["sandbox_kernel.derived_from"] == BASE
    assert labels["sandbox_kernel.derived_base_id"] == inspect(BASE, "{{.Id}}")
    assert labels["sandbox_kernel.derived_packages"] == "tabulate==0.9.0 jq is-number@7.0.0"
    assert labels["sandbox_kernel.agent_hash"] == base_labels["sandbox_kernel.agent_hash"]
    assert inspect(derived, "{{.Config.User}}") == "1000:1000"
    grown = int(inspect(derived, "{{.Size}}")) - int(inspect(BASE, "{{.Size}}"))
    assert 0 < grown < 20_000_000, f"the derived image is {grown} bytes larger"  # no wheels


def test_rebuilding_the_same_packages_is_up_to_date(derived: str, tmp_path: Path) -> None:
    reqs = tmp_path / "requirements.txt"
    reqs.write_text("tabulate==0.9.0\n")
    before = inspect(derived, "{{.Id}}")
    r = cli("build-image", "--from", BASE, "-r", reqs, "--npm", "is-number@7.0.0",
            "--apt", "jq", "--tag", derived)
    assert r.returncode == 0, r.stderr
    assert f"{derived} is up to date" in r.stdout
    assert inspect(derived, "{{.Id}}") == before


def test_a_kernel_from_its_kernelspec_runs_in_the_derived_image(
        derived: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    prefix = tmp_path / "prefix"
    r = cli("install", "--prefix", prefix, "--name", "sk-test-derived",
            "--display-name", "Derived test", "--image", derived)
    assert r.returncode == 0, r.stderr
    kernels = prefix / "share" / "jupyter" / "kernels"
    spec = json.loads((kernels / "sk-test-derived" / "kernel.json").read_text())
    node_spec = json.loads((kernels / "sk-test-derived-node" / "kernel.json").read_text())
    assert f"--Sandbox.image={derived}" in spec["argv"]
    assert f"--Sandbox.image={derived}" in node_spec["argv"]
    assert (spec["display_name"], node_spec["display_name"]) == \
        ("Derived test", "Derived test (JavaScript)")

    monkeypatch.setenv("JUPYTER_PATH", str(prefix / "share" / "jupyter"))
    cells = ["import tabulate\nprint('tabulate', tabulate.__version__)",
             "%%node\nconsole.log('is-number', require('is-number')(7), "
             "require('is-number/package.json').version)",
             "!jq --version",
             "%sandbox status"]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    NotebookClient(nb, kernel_name="sk-test-derived", timeout=120, startup_timeout=120).execute()
    texts = ["".join(o.get("text", "") or o.get("data", {}).get("text/plain", "")
                     for o in c.outputs) for c in nb.cells]
    assert texts[0] == "tabulate 0.9.0\n", nb.cells[0].outputs
    assert texts[1] == "is-number true 7.0.0\n", nb.cells[1].outputs
    assert texts[2].startswith("jq-1."), nb.cells[2].outputs
    assert derived in texts[3], nb.cells[3].outputs


def test_hashed_requirements_are_used_as_given(tmp_path: Path) -> None:
    tag = f"{TAG}-hashed"
    reqs = tmp_path / "requirements.txt"
    reqs.write_text(SIX + "\n")
    try:
        r = cli("build-image", "--from", BASE, "-r", reqs, "--tag", tag)
        assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
        lock = (context_dir(tag) / "requirements.lock").read_text()
        assert SIX in lock
        out = subprocess.run(["docker", "run", "--rm", "--network", "none", "--entrypoint",
                              "python3", tag, "-c", "import six; print(six.__version__)"],
                             capture_output=True, text=True, check=True).stdout
        assert out == "1.17.0\n"
    finally:
        remove_image(tag)


def test_a_wrong_hash_is_refused(tmp_path: Path) -> None:
    reqs = tmp_path / "requirements.txt"
    reqs.write_text("six==1.17.0 --hash=sha256:" + "0" * 64 + "\n")
    line = one_line_error(cli("build-image", "--from", BASE, "-r", reqs, "--tag", TAG + "-x"))
    assert "hash" in line.lower(), line
    assert subprocess.run(["docker", "image", "inspect", TAG + "-x"], capture_output=True,
                          check=False).returncode != 0


def test_a_hashed_file_missing_a_dependency_is_refused(tmp_path: Path) -> None:
    reqs = tmp_path / "requirements.txt"
    reqs.write_text("python-slugify==8.0.4 --hash=sha256:" + "1" * 64 + "\n")
    line = one_line_error(cli("build-image", "--from", BASE, "-r", reqs, "--tag", TAG + "-x"))
    assert "lacks dependencies: text-unidecode" in line, line


def test_a_conflict_with_the_base_image_is_refused(tmp_path: Path) -> None:
    reqs = tmp_path / "requirements.txt"
    reqs.write_text("numpy<2\n")
    line = one_line_error(cli("build-image", "--from", BASE, "-r", reqs, "--tag", TAG + "-x"))
    assert "cannot be installed beside the base image's packages" in line, line
    assert "numpy" in line


def test_an_unknown_package_is_refused(tmp_path: Path) -> None:
    reqs = tmp_path / "requirements.txt"
    reqs.write_text("no-such-package-sandbox-kernel-zz9\n")
    line = one_line_error(cli("build-image", "--from", BASE, "-r", reqs, "--tag", TAG + "-x"))
    assert "no-such-package-sandbox-kernel-zz9" in line and "not found" in line, line


def test_an_unknown_npm_package_is_refused() -> None:
    line = one_line_error(cli("build-image", "--from", BASE, "--npm",
                              "no-such-package-sandbox-kernel-zz9", "--tag", TAG + "-x"))
    assert "npm install failed" in line and "404" in line, line


def local_index(root: Path, marker: str) -> str:
    """A PEP 503 index on disk holding one wheel whose .pth file prints marker when Python
    starts (what a malicious package would use to run code at build time)."""
    def digest(data: bytes) -> str:
        return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(
            b"=").decode()

    files = {"pthprobe.pth": f"import sys; sys.stderr.write('{marker}\\n')\n".encode(),
             "pthprobe_mod.py": b"x = 1\n",
             "pthprobe-1.0.dist-info/METADATA": b"Metadata-Version: 2.1\nName: pthprobe\n"
                                                b"Version: 1.0\n",
             "pthprobe-1.0.dist-info/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\n"
                                             b"Root-Is-Purelib: true\nTag: py3-none-any\n"}
    record = "".join(f"{n},{digest(d)},{len(d)}\n" for n, d in files.items())
    whl = root / "files" / "pthprobe-1.0-py3-none-any.whl"
    whl.parent.mkdir(parents=True)
    with zipfile.ZipFile(whl, "w") as z:
        for name, data in files.items():
            z.writestr(name, data)
        z.writestr("pthprobe-1.0.dist-info/RECORD", record + "pthprobe-1.0.dist-info/RECORD,,\n")
    page = root / "simple" / "pthprobe" / "index.html"
    page.parent.mkdir(parents=True)
    sha = hashlib.sha256(whl.read_bytes()).hexdigest()
    page.write_text(f'<a href="../../files/{whl.name}#sha256={sha}">{whl.name}</a>\n')
    return (root / "simple").as_uri()


def test_no_code_of_an_added_package_runs_during_the_build(tmp_path: Path) -> None:
    """Build steps share the host's network: a wheel's .pth file must not run in them."""
    tag, marker = f"{TAG}-pth", "PTH-PROBE-RAN"
    index = local_index(tmp_path / "index", marker)
    reqs = tmp_path / "requirements.txt"
    reqs.write_text("pthprobe\n")
    try:
        r = cli("build-image", "--from", BASE, "-r", reqs, "--tag", tag,
                SANDBOX_PIP_INDEX_URL=index)
        assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
        assert marker not in r.stdout + r.stderr
        run = subprocess.run(["docker", "run", "--rm", "--network", "none", "--entrypoint",
                              "python3", tag, "-c", "import pthprobe_mod"],
                             capture_output=True, text=True, check=True)
        assert marker in run.stderr  # the probe is real: it runs once a sandbox starts Python
    finally:
        remove_image(tag)
