"""The notebook directory's side of transfers (fast tier): the notebook directory is a
temporary home directory holding .git, .jupyter, .ipython and .ssh, as in the attack."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox_kernel.errors import UsageError
from sandbox_kernel.kernel.localfiles import LocalSink, LocalSource, local_exists, parts_of


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    home = tmp_path / "home"
    for d in (".git", ".jupyter", ".ipython/profile_default/startup", ".ssh",
              ".local/share/jupyter/runtime", "work", "jupyter-config", "test"):
        (home / d).mkdir(parents=True)
    (home / ".git" / "config").write_text("[core]\n")
    (home / ".ssh" / "id_rsa").write_text("PRIVATE KEY")
    for var in ("JUPYTER_CONFIG_DIR", "JUPYTER_DATA_DIR", "JUPYTER_RUNTIME_DIR", "IPYTHONDIR",
                "JUPYTER_PATH", "JUPYTER_CONFIG_PATH"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(home)
    yield home


def download(name: str, data: bytes = b"planted", replace: bool = False) -> str:
    sink = LocalSink(name, replace)
    try:
        sink.write(data)
        return sink.commit()
    finally:
        sink.abort()


@pytest.mark.parametrize("target", [
    ".git/config", ".git/hooks/pre-commit", ".jupyter/sandbox_kernel_config.py",
    ".jupyter/jupyter_server_config.py", ".ipython/profile_default/startup/00-x.py",
    ".ssh/authorized_keys", ".bashrc", "work/.envrc", "./.profile", "work/../.gitconfig",
    ".local/share/jupyter/kernels/x/kernel.json",
])
def test_downloads_never_write_hidden_or_config_paths(home: Path, target: str) -> None:
    before = {p: p.read_bytes() for p in home.rglob("*") if p.is_file()}
    with pytest.raises(UsageError) as err:
        download(target)
    assert "\n" not in str(err.value)
    assert {p: p.read_bytes() for p in home.rglob("*") if p.is_file()} == before
    assert not list(home.rglob("*.sandbox-*"))


def test_a_jupyter_directory_without_a_dot_is_refused_too(
        home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JUPYTER_CONFIG_DIR", str(home / "jupyter-config"))
    with pytest.raises(UsageError, match="Jupyter, IPython or Python directory"):
        download("jupyter-config/sandbox_kernel_config.py")
    monkeypatch.setenv("IPYTHONDIR", str(home / "work"))
    with pytest.raises(UsageError, match="inside"):
        download("work/profile_default/startup/x.py")


@pytest.mark.parametrize("name", ["json.py", "ipykernel_launcher.py", "sandbox_kernel.py",
                                  "asyncio.pyc", "test/__init__.py", "traitlets.pth"])
def test_downloads_that_would_shadow_host_modules_are_refused(home: Path, name: str) -> None:
    with pytest.raises(UsageError, match="shadow the host"):
        download(name)


def test_ordinary_downloads_and_replacing_only_when_confirmed(home: Path) -> None:
    assert download("result.csv", b"a,b\n") == "result.csv"
    assert download("work/my_analysis.py", b"x = 1\n") == "work/my_analysis.py"
    assert download("test/results.txt") == "test/results.txt"
    assert local_exists("result.csv")
    with pytest.raises(UsageError, match="exists"):
        download("result.csv", b"other")
    assert (home / "result.csv").read_bytes() == b"a,b\n"
    assert download("result.csv", b"new", replace=True) == "result.csv"
    assert (home / "result.csv").read_bytes() == b"new"
    os.symlink(home / ".ssh" / "id_rsa", home / "link")
    with pytest.raises(UsageError):
        download("link", replace=True)  # a link is never replaced (nor followed)
    assert (home / ".ssh" / "id_rsa").read_text() == "PRIVATE KEY"
    assert not list(home.rglob(".*.sandbox-*"))


def test_an_aborted_download_leaves_nothing(home: Path) -> None:
    sink = LocalSink("partial.bin")
    sink.write(b"x" * 1000)
    sink.abort()
    assert not (home / "partial.bin").exists()
    assert [p.name for p in home.iterdir() if "sandbox-" in p.name] == []


@pytest.mark.parametrize("source", [".ssh/id_rsa", ".git/config", ".hidden", "work/.env",
                                    "/etc/passwd", "../x", "link-to-key"])
def test_uploads_refuse_hidden_outside_and_linked_files(home: Path, source: str) -> None:
    (home / ".hidden").write_text("h")
    (home / "work" / ".env").write_text("SECRET=1")
    os.symlink(home / ".ssh" / "id_rsa", home / "link-to-key")
    with pytest.raises(UsageError) as err:
        LocalSource(source, 1 << 20)
    assert "\n" not in str(err.value)


def test_a_growing_file_is_cut_at_the_size_it_had_when_opened(home: Path) -> None:
    path = home / "growing.log"
    path.write_bytes(b"a" * 3000)
    src = LocalSource("growing.log", 1 << 20)
    try:
        with path.open("ab") as f:
            f.write(b"b" * 5000)  # appended after the upload started
        chunks = list(src.chunks(1000))
    finally:
        src.close()
    assert b"".join(chunks) == b"a" * 3000
    assert [len(c) for c in chunks] == [1000, 1000, 1000]


def test_an_upload_over_the_cap_is_refused(home: Path) -> None:
    (home / "big.bin").write_bytes(b"x" * 2000)
    with pytest.raises(UsageError, match="over the"):
        LocalSource("big.bin", 1000)
    assert parts_of("big.bin", "upload") == ["big.bin"]
