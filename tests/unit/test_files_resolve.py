"""The agent's lexical path check: only /sandbox and /tmp, never '..', names kept exactly."""

from __future__ import annotations

import unicodedata

import pytest

from sandbox_kernel.agent.files import FileOpError, Resolved, resolve


@pytest.mark.parametrize(("path", "display", "root", "parts"), [
    ("a.txt", "/sandbox/a.txt", "/sandbox", ("a.txt",)),
    ("dir/sub/f", "/sandbox/dir/sub/f", "/sandbox", ("dir", "sub", "f")),
    ("./a", "/sandbox/a", "/sandbox", ("a",)),
    ("a//b/./c/", "/sandbox/a/b/c", "/sandbox", ("a", "b", "c")),
    ("/sandbox", "/sandbox", "/sandbox", ()),
    ("/sandbox/", "/sandbox", "/sandbox", ()),
    ("/sandbox/x/y", "/sandbox/x/y", "/sandbox", ("x", "y")),
    ("//sandbox//x", "/sandbox/x", "/sandbox", ("x",)),
    ("/tmp", "/tmp", "/tmp", ()),
    ("/tmp/f.bin", "/tmp/f.bin", "/tmp", ("f.bin",)),
    ("...", "/sandbox/...", "/sandbox", ("...",)),
    ("..a/b..", "/sandbox/..a/b..", "/sandbox", ("..a", "b..")),
    (".hidden", "/sandbox/.hidden", "/sandbox", (".hidden",)),
    ("-rf", "/sandbox/-rf", "/sandbox", ("-rf",)),
])
def test_allowed(path: str, display: str, root: str, parts: tuple[str, ...]) -> None:
    assert resolve(path) == Resolved(display, root, parts)


@pytest.mark.parametrize("path", [
    "..", "../etc/passwd", "../../etc/passwd", "a/../b", "a/..", "/sandbox/..",
    "/sandbox/../etc/passwd", "/tmp/../sandbox/x", "/sandbox/a/../../etc", "./../x",
    "a/b/c/../../../..",
])
def test_dotdot_refused_anywhere(path: str) -> None:
    with pytest.raises(FileOpError) as info:
        resolve(path)
    assert info.value.code == "EACCES"
    assert "'..' is not allowed" in info.value.message


@pytest.mark.parametrize("path", [
    "/", "/etc/passwd", "/dev/zero", "/proc/self/environ", "/sandboxx/x", "/sandbox2",
    "/tmpx", "/var/tmp/x", "/opt/sandbox-kernel/entrypoint.sh", "/Sandbox/x", "/TMP",
    "/var/run/docker.sock",
])
def test_outside_roots_refused(path: str) -> None:
    with pytest.raises(FileOpError) as info:
        resolve(path)
    assert info.value.code == "EACCES"
    assert "only /sandbox and /tmp are reachable" in info.value.message


@pytest.mark.parametrize("path", ["a\0b", "\0", "/sandbox/x\0/../../etc"])
def test_nul_refused(path: str) -> None:
    with pytest.raises(FileOpError) as info:
        resolve(path)
    assert info.value.code == "EINVAL"


@pytest.mark.parametrize("path", ["", None, b"/sandbox/a", 5])
def test_not_a_path(path: object) -> None:
    with pytest.raises(FileOpError) as info:
        resolve(path)  # type: ignore[arg-type]
    assert info.value.code == "EINVAL"


def test_length_limit_in_bytes() -> None:
    ok = "/sandbox/" + "a" * (4096 - len("/sandbox/"))
    assert len(ok.encode()) == 4096
    assert resolve(ok).parts == ("a" * (4096 - len("/sandbox/")),)
    with pytest.raises(FileOpError) as info:
        resolve(ok + "a")
    assert info.value.code == "ENAMETOOLONG"
    # 1366 characters, but 4098 bytes in UTF-8: refused by bytes, not characters
    with pytest.raises(FileOpError) as info:
        resolve("\u20ac" * 1366)
    assert info.value.code == "ENAMETOOLONG"


def test_roots_parameter() -> None:
    assert resolve("/data/x", roots=("/data",)).root == "/data"
    with pytest.raises(FileOpError):
        resolve("/tmp/x", roots=("/sandbox",))


@pytest.mark.parametrize("name", [
    "\U0001f600 \u00fc\u202e.txt", "caf\u00e9.txt", "cafe\u0301.txt", "\u4e2d\u6587",
    "tab\there", "new\nline", "bad\udc80byte",
])
def test_unicode_preserved_exactly(name: str) -> None:
    r = resolve(name)
    assert r.parts == (name,)
    assert r.display == "/sandbox/" + name


def test_nfc_and_nfd_stay_distinct() -> None:
    nfc = unicodedata.normalize("NFC", "caf\u00e9")
    nfd = unicodedata.normalize("NFD", "caf\u00e9")
    assert nfc != nfd
    assert resolve(nfc).parts == (nfc,)
    assert resolve(nfd).parts == (nfd,)
    assert resolve(nfc) != resolve(nfd)
