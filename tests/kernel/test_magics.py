"""%%node / %%bash cells and the host-side %sandbox magics (issue 4), through jupyter_client.

One kernel (working directory: a temporary "notebook directory") serves the module; tests
that change limits put them back, and every bad input must leave the kernel alive.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import KernelHandle, Result, containers_of, docker

pytestmark = pytest.mark.docker

DEFAULTS = "memory=512m cpus=1 pids=20 timeout=300s cpu-time=300s"


@pytest.fixture(scope="module")
def k(kernel_cwd: Path) -> Iterator[KernelHandle]:
    h = KernelHandle("sandbox", cwd=kernel_cwd)
    try:
        yield h
    finally:
        h.close()


def usage_error(r: Result) -> str:
    """The one-line UsageError a refused command must produce."""
    assert r.status == "error", r
    assert r.reply["ename"] == "UsageError", r
    (err,) = r.errors
    line = err["evalue"]
    assert line and "\n" not in line.strip(), line
    assert "Traceback" not in json.dumps(err["traceback"])
    return str(line)


def still_alive(k: KernelHandle) -> None:
    assert k.alive()
    assert k.value("'alive'") == "'alive'"


# ----- %%bash / %%sh / %%python ------------------------------------------------------------
def test_bash_cell_streams_and_reports_a_nonzero_exit(k: KernelHandle) -> None:
    r = k.execute("%%bash\necho one\nsleep 0.6\necho two >&2\nexit 3")
    assert [(m.content["name"], m.content["text"]) for m in r.streams()] == [
        ("stdout", "one\n"), ("stderr", "two\n")]
    one, two = r.streams()
    assert two.t - one.t >= 0.4  # streamed as produced, not at the end
    assert r.status == "error"
    assert r.reply["ename"] == "CalledProcessError"
    assert "status 3" in r.reply["evalue"]
    r = k.ok("%%bash\necho fine")
    assert r.text("stdout") == "fine\n"


def test_sh_is_an_alias_and_python_forces_python(k: KernelHandle) -> None:
    assert k.ok("%%sh\necho $((6 * 7))").text("stdout") == "42\n"
    assert k.ok("%%python\nprint(6 * 7)").text("stdout") == "42\n"


# ----- %%node ------------------------------------------------------------------------------
def node(k: KernelHandle, body: str, **kwargs: object) -> Result:
    return k.execute("%%node\n" + body, **kwargs)  # type: ignore[arg-type]


def node_value(k: KernelHandle, expr: str) -> str:
    r = node(k, expr)
    assert r.status == "ok", r
    return str(r.results()[-1]["text/plain"])


def test_node_state_persists_between_cells(k: KernelHandle) -> None:
    r = node(k, "let counter = 40;\nfunction inc() { return ++counter; }\nclass P { }\ninc()")
    assert r.results()[-1]["text/plain"] == "41"
    assert node_value(k, "inc()") == "42"
    assert node_value(k, "typeof P") == "'function'"
    # let/const may be re-run, as in a REPL
    assert node(k, "let counter = 1;").status == "ok"


def test_node_console_streams_and_last_expression(k: KernelHandle) -> None:
    r = node(k, "console.log('out', 1);\nconsole.error('err', 2);\nconsole.log('out', 3);\n"
                "({a: 1, b: [1, 2]})")
    assert [(m.content["name"], m.content["text"]) for m in r.streams()] == [
        ("stdout", "out 1\n"), ("stderr", "err 2\n"), ("stdout", "out 3\n")]
    assert r.results()[-1]["text/plain"] == "{ a: 1, b: [ 1, 2 ] }"


def test_node_stream_is_live(k: KernelHandle) -> None:
    r = node(k, "for (let i = 0; i < 3; i++) {\n  console.log('tick ' + i);\n"
                "  await new Promise(r => setTimeout(r, 300));\n}")
    assert r.status == "ok", r
    ticks = r.streams("stdout")
    assert [m.content["text"] for m in ticks] == ["tick 0\n", "tick 1\n", "tick 2\n"]
    assert ticks[-1].t - ticks[0].t >= 0.4


def test_node_thrown_error_has_the_javascript_stack(k: KernelHandle) -> None:
    r = node(k, "function boom() { throw new TypeError('bad thing'); }\nboom()")
    assert r.status == "error"
    assert (r.reply["ename"], r.reply["evalue"]) == ("TypeError", "bad thing")
    tb = "\n".join(r.errors[0]["traceback"])
    assert "at boom" in tb
    assert "node_runner" not in tb


def test_node_top_level_await(k: KernelHandle) -> None:
    r = node(k, "const v = await new Promise(r => setTimeout(() => r(21), 100));\nv * 2")
    assert r.results()[-1]["text/plain"] == "42"
    assert node_value(k, "v") == "21"
    r = node(k, "await Promise.resolve(1); console.log('after await')")
    assert r.status == "ok", r
    assert r.text("stdout") == "after await\n"
    r = node(k, "await Promise.reject(new RangeError('nope'))")
    assert (r.reply["ename"], r.reply["evalue"]) == ("RangeError", "nope")


def test_node_require_of_builtin_modules(k: KernelHandle) -> None:
    assert node_value(k, "const os = require('os');\nos.platform()") == "'linux'"
    assert node_value(k, "require('path').join('a', 'b')") == "'a/b'"
    assert node_value(k, "require('crypto').createHash('sha256').update('x')"
                         ".digest('hex').slice(0, 8)") == "'2d711642'"


def test_node_syntax_error_is_reported_and_state_kept(k: KernelHandle) -> None:
    assert node(k, "var before_syntax = 'kept';").status == "ok"
    r = node(k, "let = = 3")
    assert r.status == "error"
    assert r.reply["ename"] == "SyntaxError"
    assert node_value(k, "before_syntax") == "'kept'"
    still_alive(k)


def test_node_runaway_loop_stopped_by_timeout_and_interrupt(k: KernelHandle) -> None:
    assert node(k, "var survivor = 'kept';").status == "ok"
    assert k.execute("%sandbox limits timeout=2s").status == "ok"
    try:
        r = node(k, "while (true) {}", timeout=60)
    finally:
        assert k.execute("%sandbox limits timeout=300s").status == "ok"
    assert r.status == "error"
    assert "timed out after 2 s" in r.error_text
    assert "lost" not in r.error_text
    assert node_value(k, "survivor") == "'kept'"

    sent: list[float] = []

    def interrupt(m: object) -> None:
        if not sent and "spinning" in getattr(m, "content", {}).get("text", ""):
            sent.append(getattr(m, "t", 0.0))
            k.km.interrupt_kernel()

    assert node(k, "var survivor2 = 'kept';").status == "ok"
    r = node(k, "console.log('spinning');\nwhile (true) {}", on_msg=interrupt, timeout=60)
    assert sent
    assert r.status == "error"
    assert r.reply["ename"] == "KeyboardInterrupt"
    assert node_value(k, "survivor2") == "'kept'"
    still_alive(k)


def test_node_oom_is_reported_and_node_recovers(k: KernelHandle) -> None:
    k.ok("python_side = 'untouched'")
    assert node(k, "var before_oom = 1;").status == "ok"
    r = node(k, "const hog = [];\nwhile (true) hog.push(Buffer.alloc(32 * 2**20, 1));",
             timeout=120)
    assert r.status == "error"
    assert r.reply["ename"] == "MemoryError"
    assert re.search(r"512 ?m(b)? memory limit", r.reply["evalue"], re.I), r.reply["evalue"]
    assert "%sandbox limits memory=" in r.reply["evalue"]
    assert node(k, "before_oom").reply["ename"] == "ReferenceError"  # node state was lost
    assert node_value(k, "1 + 1") == "2"
    assert k.value("python_side") == "'untouched'"  # the Python interpreter was not hit


# ----- put / get ---------------------------------------------------------------------------
def test_put_and_get_move_json_between_python_and_node(k: KernelHandle) -> None:
    k.ok("shared = {'a': [1, 2], 'b': 'x\u00e9', 'n': None}")
    r = k.ok("%sandbox put shared")
    assert "copied from python to node" in r.text("stdout")
    r = node(k, "shared.a.push(3); shared.c = true; shared.b")
    assert r.results()[-1]["text/plain"] == "'x\u00e9'"
    k.ok("%sandbox get shared")
    assert k.value("shared == {'a': [1, 2, 3], 'b': 'x\u00e9', 'n': None, 'c': True}") == "True"
    assert "not defined" in usage_error(k.execute("%sandbox put no_such_variable"))
    k.ok("not_json = object()")
    assert "JSON" in usage_error(k.execute("%sandbox put not_json"))
    usage_error(k.execute("%sandbox get 'a b'"))
    still_alive(k)


# ----- help and bad input ------------------------------------------------------------------
def test_help_and_subcommand_help(k: KernelHandle) -> None:
    text = k.ok("%sandbox help").displays()[0]["text/plain"]
    for sub in ("limits", "files", "status", "health", "restart", "env", "secret", "network",
                "put", "get"):
        assert re.search(rf"^\s+{sub}\s", text, re.M), sub
    text = k.ok("%sandbox limits --help").displays()[0]["text/plain"]
    assert text.startswith("usage: %sandbox limits")
    text = k.ok("%sandbox files --help").displays()[0]["text/plain"]
    assert "download" in text and "upload" in text
    assert "help" in k.ok("%sandbox").displays()[0]["text/plain"]


def test_unknown_subcommand_is_refused(k: KernelHandle) -> None:
    line = usage_error(k.execute("%sandbox frobnicate now"))
    assert "unknown %sandbox subcommand 'frobnicate'" in line
    assert "%sandbox help" in line
    still_alive(k)


@pytest.mark.parametrize("value", ["-1", "0", "nan", "1e99", "'512m; rm -rf /'",
                                   "\u0665\u0661\u0662m", "inf", "5g", "512"])
def test_nonsense_memory_is_refused_with_the_range(k: KernelHandle, value: str) -> None:
    line = usage_error(k.execute(f"%sandbox limits memory={value}"))
    assert "32m" in line and "4g" in line, line  # the valid range
    still_alive(k)


def test_limits_past_the_ceilings_are_refused(k: KernelHandle) -> None:
    for change, bound in (("cpus=64", "2"), ("pids=100000", "512"), ("timeout=48h", "86400"),
                          ("output=1g", "64m"), ("cpu-time=-5s", "86400")):
        line = usage_error(k.execute(f"%sandbox limits {change}"))
        assert bound in line, (change, line)
    assert "cannot be changed here" in usage_error(k.execute("%sandbox limits file-size=2g"))
    assert "KEY=VALUE" in usage_error(k.execute("%sandbox limits memory"))
    shown = k.ok("%sandbox limits").displays()[0]["text/plain"]
    assert re.search(r"^memory\s+512m", shown, re.M)
    assert re.search(r"^pids\s+20\b", shown, re.M)


def test_limits_apply_live_without_losing_state(k: KernelHandle) -> None:
    k.ok("live_state = [1, 2, 3]")
    try:
        r = k.ok("%sandbox limits memory=256m cpus=0.5 pids=64 timeout=120s cpu-time=60s")
        shown = r.displays()[0]["text/plain"]
        for row in (r"memory\s+256m", r"cpus\s+0\.5", r"pids\s+64", r"timeout\s+120s",
                    r"cpu-time\s+60s"):
            assert re.search(rf"^{row}\b", shown, re.M), row
        # what the sandbox itself sees (cgroup v2 or v1)
        k.ok("import os\n"
             "def cgroup(*paths):\n"
             "    path = next(p for p in paths if os.path.exists(p))\n"
             "    return open(path).read().split()[0]")
        assert k.value("cgroup('/sys/fs/cgroup/memory.max', "
                       "'/sys/fs/cgroup/memory/memory.limit_in_bytes')") == f"'{256 * 2**20}'"
        assert k.value("cgroup('/sys/fs/cgroup/cpu.max', "
                       "'/sys/fs/cgroup/cpu/cpu.cfs_quota_us')") == "'50000'"
        assert k.value("cgroup('/sys/fs/cgroup/pids.max', "
                       "'/sys/fs/cgroup/pids/pids.max')") == "'64'"
        cid = k.container().id
        host = json.loads(docker("inspect", cid).stdout)[0]["HostConfig"]
        assert (host["Memory"], host["NanoCpus"], host["PidsLimit"]) == (256 * 2**20, 5 * 10**8,
                                                                         64)
        assert k.value("live_state") == "[1, 2, 3]"
    finally:
        k.ok(f"%sandbox limits {DEFAULTS}")


def test_host_commands_mixed_with_code_are_refused(k: KernelHandle) -> None:
    line = usage_error(k.execute("mixed_var = 1\n%sandbox status"))
    assert "cell of their own" in line
    assert k.execute("mixed_var").reply["ename"] == "NameError"  # nothing ran
    usage_error(k.execute("%%node --strict\n1"))
    still_alive(k)


# ----- files -------------------------------------------------------------------------------
def test_files_write_ls_cat_mkdir_rm(k: KernelHandle) -> None:
    r = k.ok("%%sandbox write notes/hello.txt\nhello file\nsecond line\n")
    assert "wrote 23 bytes to notes/hello.txt" in r.text("stdout")
    assert k.value("open('/sandbox/notes/hello.txt').read()") == "'hello file\\nsecond line\\n'"
    table = k.ok("%sandbox files ls notes").displays()[0]
    assert re.search(r"^name\s+size\s+type\s+modified", table["text/plain"], re.M)
    assert re.search(r"^hello\.txt\s+23( bytes|b)?\s+file\s+\d{4}-\d\d-\d\d", table["text/plain"],
                     re.M), table["text/plain"]
    assert "<table>" in table["text/html"]
    assert k.ok("%sandbox files cat notes/hello.txt").text("stdout") == \
        "hello file\nsecond line\n"
    k.ok("%sandbox files mkdir made-here")
    listing = k.ok("%sandbox files ls").displays()[0]["text/plain"]
    assert re.search(r"^made-here/\s+dir", listing, re.M), listing
    assert re.search(r"^notes/\s+dir", listing, re.M), listing
    assert "removed" in k.ok("%sandbox files rm notes/hello.txt").text("stdout")
    assert k.value("__import__('os').path.exists('/sandbox/notes/hello.txt')") == "False"
    k.ok("%%sandbox write notes/other.txt\nx")
    usage_error(k.execute("%sandbox files rm notes"))  # a non-empty directory needs -r
    assert k.value("__import__('os').path.exists('/sandbox/notes/other.txt')") == "True"
    k.ok("%sandbox files rm -r notes")
    assert k.value("__import__('os').path.exists('/sandbox/notes')") == "False"
    usage_error(k.execute("%sandbox files cat no-such-file.txt"))
    usage_error(k.execute("%sandbox write x.txt"))  # needs a cell body


def test_files_cat_outside_the_sandbox_is_refused(k: KernelHandle) -> None:
    for path in ("../../etc/passwd", "/etc/passwd", "/sandbox/../etc/passwd"):
        r = k.execute(f"%sandbox files cat {path}")
        usage_error(r)
        assert "root:" not in r.dump()
    still_alive(k)


def test_downloads_of_links_fifos_devices_and_huge_files_are_refused(
        k: KernelHandle, kernel_cwd: Path) -> None:
    k.ok("import os\n"
         "os.symlink('/etc/shadow', '/sandbox/shadow-link')\n"
         "os.mkfifo('/sandbox/a-fifo')\n"
         "os.symlink('/dev/zero', '/sandbox/zero-link')\n"
         "with open('/sandbox/huge.bin', 'wb') as f:\n"
         "    f.truncate(900 * 2**20)\n")  # sparse: over the 256m cap, under the 1g fsize
    try:
        for remote in ("shadow-link", "a-fifo", "/dev/zero", "zero-link", "huge.bin",
                       "/etc/hostname"):
            r = k.execute(f"%sandbox download {remote} got-{remote.strip('/').replace('/', '_')}",
                          timeout=20)
            line = usage_error(r)
            assert r.msgs[-1].t < 5, (remote, r.msgs[-1].t)
            if remote == "huge.bin":
                assert "cap" in line
        assert not [p.name for p in kernel_cwd.iterdir() if p.name.startswith("got-")]
    finally:
        k.ok("import os\nfor n in ('shadow-link', 'a-fifo', 'zero-link', 'huge.bin'):\n"
             "    os.remove('/sandbox/' + n)")
    still_alive(k)


def test_uploads_that_are_not_regular_files_under_the_notebook_dir_are_refused(
        k: KernelHandle, kernel_cwd: Path) -> None:
    assert "does not exist" in usage_error(k.execute("%sandbox upload no-such-file.bin"))
    link = kernel_cwd / "passwd-link"
    link.symlink_to("/etc/passwd")
    try:
        usage_error(k.execute("%sandbox upload passwd-link"))
        usage_error(k.execute("%sandbox upload /etc/passwd"))
        usage_error(k.execute("%sandbox upload ../outside.txt"))
        assert k.value("sorted(n for n in __import__('os').listdir('/sandbox') "
                       "if 'passwd' in n)") == "[]"
    finally:
        link.unlink()


def test_upload_download_round_trip_of_a_binary_file(k: KernelHandle, kernel_cwd: Path) -> None:
    data = os.urandom(3 * 2**20 + 17)
    (kernel_cwd / "blob.bin").write_bytes(data)
    r = k.ok("%sandbox upload blob.bin")
    assert "uploaded blob.bin -> blob.bin" in r.text("stdout")
    assert r.of("update_display_data"), "no progress shown for a 3 MB upload"
    assert k.value("__import__('hashlib').sha256(open('/sandbox/blob.bin', 'rb').read())"
                   ".hexdigest()") == repr(hashlib.sha256(data).hexdigest())

    r = k.ok("%sandbox download blob.bin copy.bin")
    assert (kernel_cwd / "copy.bin").read_bytes() == data
    assert "already exists" in usage_error(k.execute("%sandbox download blob.bin copy.bin"))
    assert (kernel_cwd / "copy.bin").read_bytes() == data
    k.ok("open('/sandbox/blob.bin', 'ab').write(b'more')")
    r = k.ok("%sandbox download blob.bin copy.bin --force", allow_stdin=True, answers=["y"])
    assert r.input_requests[0]["prompt"].startswith("Replace copy.bin")
    assert (kernel_cwd / "copy.bin").read_bytes() == data + b"more"
    assert not [p for p in kernel_cwd.iterdir() if ".sandbox-" in p.name]  # no temp files left


@pytest.mark.parametrize("name, quoted", [
    ("my file.txt", '"my file.txt"'),
    ("it's \"q\".txt", "\"it's \\\"q\\\".txt\""),
    ("na\u00efve-\u00f1-\u6587.txt", "na\u00efve-\u00f1-\u6587.txt"),
])
def test_odd_names_round_trip(k: KernelHandle, kernel_cwd: Path, name: str,
                              quoted: str) -> None:
    payload = f"content of {name}\n".encode()
    (kernel_cwd / name).write_bytes(payload)
    k.ok(f"%sandbox upload {quoted}")
    assert k.value(f"open('/sandbox/' + {name!r}, 'rb').read()") == repr(payload)
    copy = "copy of " + name
    quoted_copy = quoted[0] + "copy of " + quoted[1:] if quoted[0] == '"' else f'"{copy}"'
    k.ok(f"%sandbox download {quoted} {quoted_copy}")
    assert (kernel_cwd / copy).read_bytes() == payload


def test_leading_dash_names_need_a_double_dash(k: KernelHandle, kernel_cwd: Path) -> None:
    (kernel_cwd / "-dash.txt").write_text("dash\n")
    usage_error(k.execute("%sandbox upload -dash.txt"))
    usage_error(k.execute("%sandbox files cat -dash.txt"))
    k.ok("%sandbox upload -- -dash.txt")
    assert k.ok("%sandbox files cat -- -dash.txt").text("stdout") == "dash\n"
    usage_error(k.execute("%sandbox download -dash.txt"))
    k.ok("%sandbox download -- -dash.txt -dash-copy.txt")
    assert (kernel_cwd / "-dash-copy.txt").read_text() == "dash\n"


# ----- status, health, restart -------------------------------------------------------------
def test_status_and_health(k: KernelHandle) -> None:
    status = k.ok("%sandbox status").displays()[0]["text/plain"]
    cid = k.container().id
    assert re.search(rf"^container:\s+{cid[:12]}$", status, re.M), status
    assert re.search(r"^image:\s+sandbox-kernel:", status, re.M)
    assert re.search(r"^session:\s+\S+", status, re.M)
    assert re.search(r"^network:\s+none$", status, re.M)
    assert re.search(r"^limits:\s+memory 512m", status, re.M)
    assert re.search(r"^idle:\s+\d+ s", status, re.M)
    health = k.ok("%sandbox health").displays()[0]["text/plain"]
    for part in (r"memory\s+\d+ MB / 512 MB", r"cpu\s+\d", r"processes\s+\d+ / 20",
                 r"uptime\s+\d"):
        assert re.search(part, health), (part, health)


def test_sandbox_restart_resets_state(k: KernelHandle) -> None:
    k.ok("restart_me = 1\nopen('/sandbox/restart-me.txt', 'w').write('x')")
    old = k.container().id
    r = k.ok("%sandbox restart")
    assert "fresh sandbox" in r.text("stdout")
    assert k.execute("restart_me").reply["ename"] == "NameError"
    assert k.value("__import__('os').path.exists('/sandbox/restart-me.txt')") == "False"
    assert old not in {c.id for c in containers_of(k.pid)}
    assert k.container().id != old


# ----- environment, secrets, network -------------------------------------------------------
def test_env_sets_variables_for_later_cells(k: KernelHandle) -> None:
    r = k.ok("%sandbox env MY_SETTING='hello world' OTHER=2")
    assert "MY_SETTING" in r.text("stdout")
    assert k.value("__import__('os').environ['MY_SETTING']") == "'hello world'"
    assert k.ok("!echo \"$MY_SETTING/$OTHER\"").text("stdout") == "hello world/2\n"
    assert k.ok("%%bash\necho \"$MY_SETTING\"").text("stdout") == "hello world\n"
    k.ok("%sandbox env --unset OTHER")
    assert k.value("repr(__import__('os').environ.get('OTHER'))") == "'None'"
    assert "reserved" in usage_error(k.execute("%sandbox env PATH=/tmp"))
    assert "reserved" in usage_error(k.execute("%sandbox env LD_PRELOAD=/x.so"))
    usage_error(k.execute("%sandbox env 1BAD=x"))
    usage_error(k.execute("%sandbox env NOVALUE"))


def test_secret_is_prompted_stored_inside_and_never_shown(k: KernelHandle) -> None:
    secret = "tok-Very-Secret-9731"
    r = k.ok("%sandbox secret API_TOKEN", allow_stdin=True, answers=[secret])
    assert [q["password"] for q in r.input_requests] == [True]
    seen = [r]
    seen.append(k.ok("import os\npath = os.environ['API_TOKEN_FILE']\n"
                     f"print(open(path).read() == {secret[:3]!r} + {secret[3:]!r})\n"
                     "print(oct(os.stat(path).st_mode & 0o777))"))
    assert seen[-1].text("stdout") == "True\n0o600\n"
    seen.append(k.ok("!env"))
    assert "API_TOKEN_FILE=" in seen[-1].text("stdout")
    for res in seen:
        assert secret not in res.dump()
    inspect = docker("inspect", k.container().id).stdout
    assert secret not in inspect
    assert "API_TOKEN_FILE" not in inspect  # set live through the agent, not the container
    assert "cannot prompt" in usage_error(k.execute("%sandbox secret OTHER", allow_stdin=False))


def test_network_is_none_and_cannot_be_turned_on(k: KernelHandle) -> None:
    assert "network: none" in k.ok("%sandbox network").text("stdout")
    assert "not allowed" in usage_error(k.execute("%sandbox network on"))
    usage_error(k.execute("%sandbox network sideways"))
    r = k.execute("import socket\nsocket.create_connection(('1.1.1.1', 53), timeout=2)")
    assert r.status == "error"
