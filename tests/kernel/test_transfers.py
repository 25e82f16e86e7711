"""Transfers that could plant host code, tried from cells, with the notebook directory at a
temporary home directory that holds .git, .jupyter, .ipython and .ssh (the attack in
issue 10). Nothing lands there, nothing hidden leaves, and a file is replaced only after
the user confirms at a prompt the frontend shows; a batch run (no stdin) refuses.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from .conftest import KernelHandle

pytestmark = pytest.mark.docker


def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("home")
    for d in (".git/hooks", ".jupyter", ".ipython/profile_default/startup", ".ssh",
              ".local/share/jupyter", "jupyter-config", "work"):
        (home / d).mkdir(parents=True)
    (home / ".git" / "config").write_text("[core]\n\trepositoryformatversion = 0\n")
    (home / ".ssh" / "id_rsa").write_text("-----BEGIN OPENSSH PRIVATE KEY----- canary\n")
    (home / ".jupyter" / "jupyter_server_config.py").write_text("# the user's own\n")
    (home / "notes.txt").write_text("ordinary file\n")
    return home


@pytest.fixture(scope="module")
def hk(home: Path, start_kernel_module: Callable[..., KernelHandle]) -> KernelHandle:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JUPYTER_", "IPYTHON"))}
    env.update(HOME=str(home), JUPYTER_CONFIG_DIR=str(home / "jupyter-config"))
    h = start_kernel_module(cwd=home, env=env)
    h.ok("open('/sandbox/evil', 'w').write('[core]\\n\\tfsmonitor = touch /tmp/pwned\\n')")
    return h


@pytest.fixture(scope="module")
def start_kernel_module() -> Iterator[Callable[..., KernelHandle]]:
    handles: list[KernelHandle] = []

    def start(**kwargs: object) -> KernelHandle:
        h = KernelHandle("sandbox", **kwargs)  # type: ignore[arg-type]
        handles.append(h)
        return h

    yield start
    for h in handles:
        h.close()


def _refused(r: object) -> str:
    assert r.status == "error", r  # type: ignore[attr-defined]
    line: str = r.reply["evalue"]  # type: ignore[attr-defined]
    assert r.reply["ename"] == "UsageError" and "\n" not in line  # type: ignore[attr-defined]
    return line


@pytest.mark.parametrize("target", [
    ".git/config", ".git/hooks/pre-commit", ".jupyter/sandbox_kernel_config.py",
    ".jupyter/jupyter_server_config.py", ".ipython/profile_default/startup/00-evil.py",
    ".ssh/authorized_keys", ".bashrc", ".local/share/jupyter/kernels/x/kernel.json",
    "jupyter-config/sandbox_kernel_config.py", "work/../.profile", "ipykernel_launcher.py",
    "json.py",
])
def test_downloads_cannot_plant_host_code(hk: KernelHandle, home: Path, target: str) -> None:
    before = _snapshot(home)
    for force in ("", " --force"):
        r = hk.execute(f"%sandbox download evil {target}{force}", allow_stdin=True,
                       answers=["y"])
        line = _refused(r)
        assert not r.input_requests, "refused before any prompt"
        assert any(w in line for w in ("hidden", "inside", "shadow", "no '..'")), line
    assert _snapshot(home) == before


@pytest.mark.parametrize("source", [".ssh/id_rsa", ".git/config",
                                    ".jupyter/jupyter_server_config.py", "work/../.ssh/id_rsa",
                                    f"{'/'.join(['.ssh', 'id_rsa'])}"])
def test_hidden_files_never_upload(hk: KernelHandle, home: Path, source: str) -> None:
    r = hk.execute(f"%sandbox upload {source} stolen")
    line = _refused(r)
    assert "hidden" in line or "no '..'" in line, line
    assert "canary" not in r.dump()
    assert hk.value("import os\nos.path.exists('/sandbox/stolen')") == "False"
    r = hk.execute(f"%sandbox upload {home}/{source} stolen")
    _refused(r)


def test_replacing_needs_a_confirmation_the_frontend_asks_for(hk: KernelHandle,
                                                              home: Path) -> None:
    hk.ok("open('/sandbox/new.txt', 'w').write('from the sandbox\\n')")
    hk.ok("%sandbox download new.txt result.txt")
    assert (home / "result.txt").read_text() == "from the sandbox\n"
    hk.ok("open('/sandbox/new.txt', 'w').write('second version\\n')")

    line = _refused(hk.execute("%sandbox download new.txt result.txt"))
    assert "already exists; add --force" in line
    line = _refused(hk.execute("%sandbox download new.txt result.txt --force"))  # batch
    assert "needs a confirmation this frontend cannot ask for" in line
    r = hk.execute("%sandbox download new.txt result.txt --force", allow_stdin=True,
                   answers=["n"])
    assert "not confirmed" in _refused(r)
    assert r.input_requests[0]["prompt"] == ("Replace result.txt in the notebook's directory "
                                             "with new.txt from the sandbox? [y/N] ")
    assert (home / "result.txt").read_text() == "from the sandbox\n"

    r = hk.ok("%sandbox download new.txt result.txt --force", allow_stdin=True,
              answers=["y"])
    assert (home / "result.txt").read_text() == "second version\n"
    assert not [p for p in home.iterdir() if ".sandbox-" in p.name]


def test_ordinary_files_still_move(hk: KernelHandle, home: Path) -> None:
    hk.ok("%sandbox upload notes.txt")
    assert hk.value("open('/sandbox/notes.txt').read()") == "'ordinary file\\n'"
    hk.ok("%sandbox download notes.txt work/notes-copy.txt")
    assert (home / "work" / "notes-copy.txt").read_text() == "ordinary file\n"
    hk.ok("open('/sandbox/analysis.py', 'w').write('x = 1\\n')")
    hk.ok("%sandbox download analysis.py")
    assert (home / "analysis.py").read_text() == "x = 1\n"
