"""File operations stay inside /sandbox and /tmp, never follow links, never hang."""

from __future__ import annotations

import time

import pytest

from sandbox_kernel.errors import FileOperationError, SandboxError

pytestmark = [pytest.mark.docker, pytest.mark.timeout(15)]


def refused(fn, *args, code: str, words: str = "", **kwargs) -> FileOperationError:
    t0 = time.monotonic()
    with pytest.raises(FileOperationError) as info:
        fn(*args, **kwargs)
    assert time.monotonic() - t0 < 3, "a refusal must be quick"
    err = info.value
    assert isinstance(err, SandboxError)
    assert err.code == code, f"{args}: {err.code} {err}"
    assert words in str(err)
    assert "\n" not in str(err)
    return err


@pytest.fixture
def tricks(session):
    r = session.execute_command(
        "ln -s /etc/passwd /sandbox/l && ln -s /etc /sandbox/etc && mkdir /sandbox/real && "
        "echo inside > /sandbox/real/f && ln -s /sandbox/real /sandbox/lreal && "
        "mkfifo /sandbox/fifo && ln -s /dev/zero /sandbox/zero && "
        "head -c 5000 /dev/zero > /sandbox/big")
    assert r.exit_code == 0, r.stderr
    return session


def test_dotdot_refused(session) -> None:
    refused(session.read_file, "../../etc/passwd", code="EACCES", words="'..' is not allowed")
    refused(session.read_file, "/sandbox/../etc/passwd", code="EACCES")
    refused(session.write_file, "a/../../x", b"x", code="EACCES")


def test_absolute_outside_refused(session) -> None:
    refused(session.read_file, "/etc/passwd", code="EACCES", words="outside the sandbox")
    refused(session.read_file, "/proc/self/environ", code="EACCES")
    refused(session.list_files, "/", code="EACCES")
    refused(session.write_file, "/opt/x", b"x", code="EACCES")


def test_symlink_to_file_refused(tricks) -> None:
    refused(tricks.read_file, "l", code="ELOOP", words="links are not followed")
    refused(tricks.write_file, "l", b"overwrite", code="ELOOP")
    # the link itself is visible as a link, never as its target
    st = tricks.stat("l")
    assert (st.type, st.size) == ("symlink", len("/etc/passwd"))
    assert {e.name: e.type for e in tricks.list_files()}["l"] == "symlink"


def test_symlinked_directory_as_path_component_refused(tricks) -> None:
    refused(tricks.read_file, "etc/passwd", code="ENOTDIR", words="is a link")
    refused(tricks.read_file, "lreal/f", code="ENOTDIR")
    refused(tricks.write_file, "lreal/new", b"x", code="ENOTDIR")
    refused(tricks.list_files, "lreal", code="ENOTDIR")
    refused(tricks.mkdir, "etc/sub", code="ENOTDIR")
    assert tricks.read_file("real/f") == b"inside\n"  # the real path still works


def test_deleting_a_link_removes_only_the_link(tricks) -> None:
    tricks.delete_file("lreal", recursive=True)
    assert tricks.read_file("real/f") == b"inside\n"
    names = [e.name for e in tricks.list_files()]
    assert "lreal" not in names and "real" in names


def test_fifo_refused_without_hanging(tricks) -> None:
    refused(tricks.read_file, "fifo", code="EINVAL", words="not a regular file")
    refused(tricks.write_file, "fifo", b"x", code="ENXIO")
    assert tricks.execute_command(["echo", "ok"]).stdout == "ok\n"


def test_devices_refused(tricks) -> None:
    refused(tricks.read_file, "/dev/zero", code="EACCES")
    refused(tricks.read_file, "zero", code="ELOOP")


def test_directory_is_not_a_file(tricks) -> None:
    refused(tricks.read_file, "real", code="EINVAL", words="is a directory")
    refused(tricks.read_file, "/sandbox", code="EISDIR")
    refused(tricks.write_file, "/tmp", b"x", code="EISDIR")


def test_file_over_the_cap_refused(tricks) -> None:
    refused(tricks.read_file, "big", max_bytes=1000, code="EFBIG", words="1000-byte")
    assert len(tricks.read_file("big", max_bytes=5000)) == 5000


def test_sandbox_roots_cannot_be_deleted(session) -> None:
    refused(session.delete_file, "/sandbox", code="EACCES", words="refusing to delete")
    refused(session.delete_file, "/sandbox", recursive=True, code="EACCES")
    refused(session.delete_file, "/tmp/", recursive=True, code="EACCES")
    refused(session.delete_file, ".", recursive=True, code="EACCES")


def test_missing_file(session) -> None:
    refused(session.read_file, "nope.txt", code="ENOENT")
    refused(session.delete_file, "nope.txt", code="ENOENT")
