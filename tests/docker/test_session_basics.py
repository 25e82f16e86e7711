"""A session against the real engine: commands, files, health, events, persistent cells."""

from __future__ import annotations

import hashlib
import os
import time
import unicodedata

import pytest

from sandbox_kernel.errors import FileOperationError, SessionNotFound
from sandbox_kernel.sandbox import FileOp, SandboxManager
from sandbox_kernel.sandbox.units import MiB

pytestmark = pytest.mark.docker


# ----- commands -------------------------------------------------------------------------------
def test_command_stdout_stderr_exit_code(session) -> None:
    r = session.execute_command("echo out; echo err >&2; exit 3")
    assert (r.exit_code, r.stdout, r.stderr) == (3, "out\n", "err\n")
    assert not r.ok and not r.timed_out and not r.oom_killed
    assert 0 <= r.duration_ms < 5000


def test_command_argv_form_is_not_a_shell(session) -> None:
    r = session.execute_command(["printf", "%s|", "a b", "$HOME", "; echo no", "*"])
    assert r.exit_code == 0
    assert r.stdout == "a b|$HOME|; echo no|*|"
    assert r.ok


def test_command_runs_in_sandbox_dir_and_missing_binary(session) -> None:
    assert session.execute_command(["pwd"]).stdout == "/sandbox\n"
    r = session.execute_command(["/no/such/binary"])
    assert r.exit_code == 127
    assert "No such file" in r.stderr


def test_command_streams_output(session) -> None:
    seen: list[tuple[str, str]] = []
    r = session.execute_command("echo one; echo two >&2",
                                on_output=lambda n, t: seen.append((n, t)))
    assert r.exit_code == 0
    assert ("stdout", "one\n") in seen
    assert ("stderr", "two\n") in seen


def test_command_env_is_passed(session) -> None:
    r = session.execute_command("echo $GREETING", env={"GREETING": "hej"})
    assert r.stdout == "hej\n"


# ----- files ----------------------------------------------------------------------------------
def test_write_read_roundtrip_text_and_binary(session) -> None:
    assert session.write_file("hello.txt", "h\u00e9llo\n") == len("h\u00e9llo\n".encode())
    assert session.read_file("hello.txt") == "h\u00e9llo\n".encode()
    blob = bytes(range(256)) * 4 + b"\0\r\n\xff"
    assert session.write_file("/sandbox/blob.bin", blob) == len(blob)
    assert session.read_file("/sandbox/blob.bin") == blob
    # the file really is in the container, byte for byte
    r = session.execute_command(["sha256sum", "/sandbox/blob.bin"])
    assert r.stdout.split()[0] == hashlib.sha256(blob).hexdigest()
    # empty files and /tmp work too
    assert session.write_file("/tmp/empty", b"") == 0
    assert session.read_file("/tmp/empty") == b""


def test_large_file_is_chunked(session) -> None:
    data = os.urandom(3 * MiB + 17)
    wrote: list[int] = []
    assert session.write_file("big.bin", data, on_progress=wrote.append) == len(data)
    assert wrote == [MiB, 2 * MiB, 3 * MiB, 3 * MiB + 17]
    read: list[int] = []
    assert session.read_file("big.bin", on_progress=read.append) == data
    assert len(read) == 4 and read[-1] == len(data)
    assert session.stat("big.bin").size == len(data)


def test_list_stat_mkdir_delete(session) -> None:
    session.mkdir("a/b/c", parents=True)
    session.write_file("a/b/c/f.txt", b"123")
    session.write_file("a/top.txt", b"x")
    assert session.stat("a/b").type == "dir"
    st = session.stat("a/b/c/f.txt")
    assert (st.name, st.type, st.size, st.mode) == ("f.txt", "file", 3, 0o644)
    assert abs(st.mtime - time.time()) < 120
    assert [(e.name, e.type) for e in session.list_files("a")] == [("b", "dir"),
                                                                   ("top.txt", "file")]
    with pytest.raises(FileOperationError) as info:
        session.mkdir("a")
    assert info.value.code == "EEXIST"
    session.mkdir("a", parents=True)  # exists: fine with parents
    with pytest.raises(FileOperationError) as info:
        session.delete_file("a")
    assert info.value.code == "ENOTEMPTY"
    session.delete_file("a/top.txt")
    assert [e.name for e in session.list_files("a")] == ["b"]
    session.delete_file("a", recursive=True)
    assert "a" not in [e.name for e in session.list_files()]
    with pytest.raises(FileOperationError) as info:
        session.stat("a")
    assert info.value.code == "ENOENT"


def test_write_with_parents(session) -> None:
    with pytest.raises(FileOperationError) as info:
        session.write_file("x/y/z.txt", b"1")
    assert info.value.code == "ENOENT"
    session.write_file("x/y/z.txt", b"1", parents=True)
    assert session.read_file("x/y/z.txt") == b"1"


def test_unicode_names_roundtrip_exactly(session) -> None:
    name = "\U0001f600 \u00fc\u202e.txt"
    nfd = unicodedata.normalize("NFD", "caf\u00e9.txt")
    nfc = unicodedata.normalize("NFC", nfd)
    session.write_file(name, b"smile")
    session.write_file(nfd, b"decomposed")
    names = [e.name for e in session.list_files()]
    assert name in names
    assert nfd in names and nfc not in names
    assert session.read_file(name) == b"smile"
    assert session.read_file(nfd) == b"decomposed"
    with pytest.raises(FileOperationError) as info:
        session.read_file(nfc)  # a different name on disk: no normalisation
    assert info.value.code == "ENOENT"
    # byte for byte, as the container's own listdir sees it
    r = session.execute_command(
        ["python3", "-c", "import os; print(sorted(n.hex() for n in os.listdir(b'/sandbox')))"])
    assert name.encode().hex() in r.stdout
    assert nfd.encode().hex() in r.stdout
    assert nfc.encode().hex() not in r.stdout


def test_seed_file_operation_api(manager, session) -> None:
    sid = session.session_id
    assert manager.file_operation(sid, FileOp("write", "seed.txt", "hello seed")) == 10
    assert manager.file_operation(sid, FileOp("write", "seed.bin", b"\x00\x01")) == 2
    assert manager.file_operation(sid, FileOp("read", "seed.txt")) == "hello seed"
    assert manager.file_operation(sid, FileOp("list", "/sandbox")) == ["seed.bin", "seed.txt"]
    assert manager.file_operation(sid, FileOp("delete", "seed.txt")) is None
    assert manager.file_operation(sid, FileOp("list", "/sandbox")) == ["seed.bin"]
    with pytest.raises(ValueError, match="unknown file operation"):
        manager.file_operation(sid, FileOp("chmod", "seed.bin"))  # type: ignore[arg-type]
    with pytest.raises(SessionNotFound):
        manager.file_operation("nope", FileOp("list", "/sandbox"))


# ----- manager views --------------------------------------------------------------------------
def test_health_fields(manager, session) -> None:
    h = manager.get_session_health(session.session_id)
    assert h.status == "healthy" and h.reason == ""
    assert h.memory_limit == 512 * MiB
    assert 0 < h.memory_usage < h.memory_limit
    assert 0 < h.memory_percent < 50
    assert 0 <= h.cpu_percent <= 200
    assert h.pids_limit == 20
    assert 2 <= h.pids < 20
    assert 0 < h.uptime_s < 120
    assert h.oom_kills == 0


def test_list_sessions(manager, session) -> None:
    infos = {i.session_id: i for i in manager.list_sessions()}
    assert session.session_id in infos
    info = infos[session.session_id]
    assert info.container_id == session.container_id
    assert (info.memory_limit, info.cpu_limit, info.pids_limit) == (512 * MiB, 1.0, 20)
    assert info.alive is True
    assert info.image == manager.image
    assert info.created_at <= info.last_activity_at <= time.time()


def test_events() -> None:
    events: list[tuple[str, dict]] = []
    with SandboxManager(cleanup_interval=0) as m:
        for name in ("session:created", "execution:completed", "session:cleanup"):
            m.on(name, lambda data, name=name: events.append((name, data)))
        with pytest.raises(ValueError, match="unknown event"):
            m.on("session:exploded", lambda data: None)
        sid = m.create_session()
        result = m.execute_command(sid, "echo hi")
        m.destroy_session(sid)
        assert m.list_sessions() == []
    kinds = [k for k, _ in events]
    assert kinds == ["session:created", "execution:completed", "session:cleanup"]
    created, completed, cleanup = (d for _, d in events)
    assert created["session_id"] == sid and created["pooled"] is False
    assert len(created["container_id"]) == 64 and created["duration_ms"] > 0
    assert completed["session_id"] == sid and completed["result"] is result
    assert result.stdout == "hi\n"
    assert cleanup == {"session_id": sid, "reason": "destroyed"}


def test_listener_failure_becomes_error_event() -> None:
    errors: list[dict] = []
    with SandboxManager(cleanup_interval=0) as m:
        m.on("error", errors.append)
        m.on("session:created", lambda data: 1 / 0)
        sid = m.create_session()  # the failing listener must not break session creation
        assert m.execute_command(sid, "true").exit_code == 0
    assert len(errors) == 1 and isinstance(errors[0]["error"], ZeroDivisionError)


# ----- cells ----------------------------------------------------------------------------------
def test_run_keeps_state_and_returns_result(session, run_cell) -> None:
    r1, ev1 = run_cell(session, "x = 41\nprint('set')")
    assert r1.verdict == "ok" and r1.ok and not r1.state_lost
    assert [(e["type"], e.get("text")) for e in ev1] == [("stream", "set\n")]
    r2, ev2 = run_cell(session, "x + 1")
    assert r2.verdict == "ok"
    results = [e for e in ev2 if e["type"] == "result"]
    assert len(results) == 1
    assert results[0]["data"]["text/plain"] == "42"


def test_run_error_is_a_value(session, run_cell) -> None:
    r, ev = run_cell(session, "1/0")
    assert r.verdict == "error" and not r.state_lost
    errs = [e for e in ev if e["type"] == "error"]
    assert len(errs) == 1 and errs[0]["ename"] == "ZeroDivisionError"
    r, _ = run_cell(session, "pass")
    assert r.verdict == "ok"


def test_lone_surrogate_output_does_not_break_streaming(session, run_cell) -> None:
    r, ev = run_cell(session, "import time\nprint('a\\ud800b')\ntime.sleep(0.3)\nprint('after')")
    texts = "".join(e.get("text", "") for e in ev if e["type"] == "stream")
    assert "after" in texts, f"output was lost: {ev!r} ({r})"
    stamps: list[float] = []
    session.run("import time\nfor i in range(3):\n    print(i)\n    time.sleep(0.4)",
                lambda e: stamps.append(time.monotonic()) if e.get("type") == "stream"
                else None).wait()
    assert len(stamps) >= 2 and stamps[-1] - stamps[0] > 0.5, "output no longer streams live"
