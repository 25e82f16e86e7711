"""Cell code cannot subvert the agent, and the host believes only what it measured.

Every attack runs from inside cells (Python, Node and shell), as an attacker would; each
test checks what the host reports, that the limit held, that the kernel is alive and that
the next cell works. docs/architecture.md, "Integrity", says who enforces what.
"""

from __future__ import annotations

import json
import os
import signal
import time

import pytest
from kernel.conftest import containers_of, docker

from .conftest import ATTEMPT, KernelHandle, container_processes, probe

pytestmark = pytest.mark.docker

FIND_AGENT = r'''
import os
def uid(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("Uid:"):
            return int(line.split()[1])
AGENT = next(int(p) for p in os.listdir("/proc") if p.isdigit() and uid(p) == 999)
'''


def node(k: KernelHandle, code: str, **kwargs: object):
    return k.execute("%%node\n" + code, **kwargs)  # type: ignore[arg-type]


def still_fine(k: KernelHandle) -> None:
    """The kernel answers, Python and Node run, and the sandbox is healthy."""
    assert k.value("6 * 7") == "42"
    assert node(k, "6 * 7").results()[-1]["text/plain"] == "42"
    assert "sandbox HEALTHY" in k.ok("%sandbox health").displays()[0]["text/plain"]


# ----- the agent's pipes, memory and signals ------------------------------------------------
def test_python_cannot_open_trace_or_signal_the_agent(k: KernelHandle) -> None:
    out = probe(k, FIND_AGENT + ATTEMPT + r'''
import ctypes, signal
attempt("list fds", lambda: os.listdir(f"/proc/{AGENT}/fd"))
for fd in (0, 1, 2):
    attempt(f"open fd {fd}", lambda: open(f"/proc/{AGENT}/fd/{fd}", "wb"))
attempt("init stdout", lambda: open("/proc/1/fd/1", "wb"))
attempt("memory", lambda: open(f"/proc/{AGENT}/mem", "rb").read(1))
attempt("environ", lambda: open(f"/proc/{AGENT}/environ", "rb").read())
libc = ctypes.CDLL(None, use_errno=True)
for name, req in (("PTRACE_ATTACH", 16), ("PTRACE_SEIZE", 0x4206)):
    for target in (AGENT, 1):
        rc = libc.ptrace(req, target, 0, 0)
        res[f"{name} {'agent' if target == AGENT else 'init'}"] = \
            "ALLOWED" if rc == 0 else errno.errorcode[ctypes.get_errno()]
for sig in ("SIGSTOP", "SIGKILL", "SIGTERM", "SIGINT"):
    for target in (AGENT, 1):
        attempt(f"{sig} {'agent' if target == AGENT else 'init'}",
                lambda: os.kill(target, getattr(signal, sig)))
print(json.dumps(res))
''')
    assert "ALLOWED" not in out.values(), out
    assert out["list fds"] == out["open fd 1"] == out["memory"] == "EACCES"
    assert out["PTRACE_ATTACH agent"] == out["PTRACE_SEIZE agent"] == "EPERM"
    assert out["SIGSTOP agent"] == out["SIGKILL agent"] == "EPERM"
    still_fine(k)


def test_node_cannot_open_or_signal_the_agent(k: KernelHandle) -> None:
    agent = int(k.value(FIND_AGENT + "AGENT"))
    r = node(k, f"""
const fs = require('fs');
const res = {{}};
const attempt = (name, fn) => {{ try {{ fn(); res[name] = 'ALLOWED'; }}
                               catch (e) {{ res[name] = e.code; }} }};
attempt('list fds', () => fs.readdirSync('/proc/{agent}/fd'));
attempt('open fd 1', () => fs.openSync('/proc/{agent}/fd/1', 'w'));
attempt('init stdout', () => fs.openSync('/proc/1/fd/1', 'w'));
attempt('memory', () => fs.readFileSync('/proc/{agent}/mem'));
for (const sig of ['SIGSTOP', 'SIGKILL', 'SIGTERM']) {{
  attempt(sig, () => process.kill({agent}, sig));
  attempt(sig + ' init', () => process.kill(1, sig));
}}
const ptrace = require('child_process').spawnSync('python3', ['-c',
  'import ctypes,errno;l=ctypes.CDLL(None,use_errno=True);' +
  'print(l.ptrace(16,{agent},0,0), errno.errorcode[ctypes.get_errno()])']);
res['ptrace'] = String(ptrace.stdout).trim();
JSON.stringify(res)""")
    out = json.loads(r.results()[-1]["text/plain"][1:-1])  # a JS string's repr
    assert "ALLOWED" not in out.values(), out
    assert out["list fds"] == out["open fd 1"] == "EACCES"
    assert out["SIGSTOP"] == out["SIGKILL"] == "EPERM"
    assert out["ptrace"] == "-1 EPERM"
    still_fine(k)


def test_shell_cannot_open_trace_or_signal_the_agent(k: KernelHandle) -> None:
    agent = int(k.value(FIND_AGENT + "AGENT"))
    r = k.execute(f"""%%bash
ls /proc/{agent}/fd >/dev/null 2>&1 && echo LISTED
echo forged > /proc/{agent}/fd/1 2>/dev/null && echo WROTE
echo forged > /proc/1/fd/1 2>/dev/null && echo WROTE-INIT
kill -STOP {agent} 2>/dev/null && echo STOPPED
kill -KILL {agent} 2>/dev/null && echo KILLED
kill -KILL 1 2>/dev/null && echo KILLED-INIT
python3 -c 'import ctypes,errno;l=ctypes.CDLL(None,use_errno=True);print(l.ptrace(16,{agent},0,0))'
echo done""")
    assert r.text("stdout") == "-1\ndone\n", r
    still_fine(k)


# ----- forged frames --------------------------------------------------------------------
LINK = r'''
import gc, json, os, time
link = next(o for o in gc.get_objects() if type(o).__name__ == "Link")
out = next(o for o in gc.get_objects() if type(o).__name__ == "Output")
def forge(frame, fd=None):
    os.write(link.events_fd if fd is None else fd, (json.dumps(frame) + "\n").encode())
'''


def test_a_forged_done_does_not_end_the_cell_or_its_figures(k: KernelHandle) -> None:
    """The cell claims to be done with tiny figures, then allocates 300 MB and burns 2 CPU
    seconds: the host reports what the agent measured, and the cell's end as it really was."""
    t0 = time.monotonic()
    r = k.execute(LINK + r'''
forge({"id": out.run_id, "type": "done", "status": "ok", "user_expressions": {}})
forge({"id": out.run_id, "type": "stream", "name": "stdout", "text": "after the forgery\n"})
hog = b"x" * (300 << 20)
t = time.process_time()
while time.process_time() - t < 2:
    pass
del hog
print("really done")''', timeout=60)
    wall = time.monotonic() - t0
    assert r.status == "ok", r
    assert r.text("stdout") == "after the forgery\nreally done\n"
    acct = r.metadata["sandbox"]
    assert acct["verdict"] == "ok"
    assert acct["peak_memory"] >= 300 << 20, acct
    assert acct["cpu_seconds"] >= 1.9, acct
    assert acct["wall_seconds"] >= 2.0 and wall >= 2.0
    still_fine(k)


def test_well_formed_frames_on_every_pipe_a_cell_holds_are_its_own_output_or_nothing(
        k: KernelHandle) -> None:
    r = k.execute(LINK + r'''
frames = [{"id": 1, "type": "done", "status": "ok", "user_expressions": {}},
          {"id": 10**9, "type": "reply", "status": "ok", "body": {}},
          {"id": 0, "type": "ready", "version": "forged"},
          {"id": 12345, "type": "stream", "name": "stdout", "text": "FORGED\n"},
          {"id": out.run_id + 1, "type": "stream", "name": "stdout", "text": "FORGED\n"}]
written = 0
for name in os.listdir("/proc/self/fd"):
    fd = int(name)
    if fd > 2 and os.path.exists(f"/proc/self/fd/{fd}"):
        for frame in frames:
            try:
                forge(frame, fd)
                written += 1
            except OSError:
                pass
print("wrote", written > 0)''', timeout=60)
    assert r.status == "ok", r
    assert r.text("stdout") == "wrote True\n"
    assert "FORGED" not in r.dump()
    for _ in range(3):
        r = k.ok("print('next')")
        assert r.text("stdout") == "next\n"
    still_fine(k)


@pytest.mark.parametrize("payload, reason", [
    ("'{\"id\":1,\"type\":\"stream\",\"text\":\"' + 'x' * (9 << 20) + '\"}\\n'", "exceed"),
    ("'[' * 100000 + ']' * 100000 + '\\n'", "nested too deeply"),
    ("'{\"id\":1,\"type\":\"stream\",\"type\":\"done\"}\\n'", "duplicate key"),
    ("'{\"id\":1,\"type\":\"display\",\"data\":' + '{\"a\":' * 40 + '1' + '}' * 40 + "
     "',\"metadata\":{},\"transient\":{},\"update\":false}\\n'", "not a valid obj"),
], ids=["huge", "deep", "duplicate-key", "nested-bundle"])
def test_malformed_frames_from_a_cell_restart_only_its_interpreter(
        k: KernelHandle, payload: str, reason: str) -> None:
    k.ok("before = 1")
    r = k.execute(LINK + f"os.write(link.events_fd, ({payload}).encode())\ntime.sleep(5)",
                  timeout=60)
    assert r.status == "error"
    assert r.reply["ename"] == "SandboxError"
    assert "sent an invalid frame" in r.reply["evalue"] and reason in r.reply["evalue"], r
    assert "variables were lost" in r.reply["evalue"]
    assert k.execute("before").reply["ename"] == "NameError"
    still_fine(k)


# ----- the host's own deadline ----------------------------------------------------------------
def host_pid(k: KernelHandle, pid: int) -> int:
    """The host's pid of the sandbox process that is `pid` inside its pid namespace."""
    for proc in container_processes(k):
        with open(f"/proc/{proc.pid}/status") as f:
            nspid = next((line.split()[1:] for line in f if line.startswith("NSpid:")), [])
        if nspid and int(nspid[-1]) == pid:
            return proc.pid
    raise AssertionError(f"no process of the sandbox is pid {pid} inside it")


def test_a_stopped_agent_cannot_stop_the_deadline(tmp_path) -> None:
    """Simulate a broken agent from outside (cell code cannot stop it): the host interrupts
    at the deadline and replaces the sandbox within the grace period."""
    h = KernelHandle("sandbox", cwd=tmp_path, extra_arguments=["--Sandbox.timeout=3s",
                                                               "--Sandbox.interrupt_grace=2"])
    try:
        agent = host_pid(h, int(h.value(FIND_AGENT + "AGENT")))
        (record,) = containers_of(h.pid)
        t0 = time.monotonic()
        # From the host, at once: a `docker exec kill` on a busy engine can take longer
        # than the 3 s deadline, and then the agent ends the cell itself.
        r = h.execute("import subprocess\nprint('stopping', flush=True)\n"
                      "__import__('time').sleep(60)", on_msg=lambda m: os.kill(
                          agent, signal.SIGSTOP) if "stopping" in
                      m.content.get("text", "") else None, timeout=60)
        elapsed = time.monotonic() - t0
        assert r.status == "error"
        assert r.reply["ename"] == "TimeoutError"
        assert r.reply["evalue"] == ("cell timed out after 3 s; the sandbox did not stop it "
                                     "and was replaced")
        assert elapsed < 3 + 2 + 3, elapsed  # deadline, grace, and the host's own margin
        assert r.metadata["sandbox"]["verdict"] == "timeout"
        r = h.ok("print('fresh')")
        assert "a fresh sandbox was started" in r.text("stderr")
        assert r.text("stdout") == "fresh\n"
        assert [c.id for c in containers_of(h.pid)] != [record.id]
    finally:
        h.close()


# ----- cleanup by ancestry and start time ---------------------------------------------------
DETACH = {
    "python-popen": ("import subprocess\nsubprocess.Popen(['sleep', '300', 'MARK'], env={}, "
                     "start_new_session=True, stdout=subprocess.DEVNULL)"),
    "python-double-fork": ("import os\nif os.fork() == 0:\n    os.setsid()\n    "
                           "if os.fork() == 0:\n        os.environ.clear()\n        "
                           "os.execv('/bin/sleep', ['sleep', '300', 'MARK'])\n    os._exit(0)\n"
                           "os.wait()"),
    "node-detached": ("%%node\nrequire('child_process').spawn('sleep', ['300', 'MARK'], "
                      "{detached: true, env: {}, stdio: 'ignore'}).unref();"),
    "bash-setsid": "%%bash\nsetsid env -i /bin/sleep 300 MARK </dev/null >/dev/null 2>&1 &",
}


def _marked(k: KernelHandle) -> list[int]:
    return [p.pid for p in container_processes(k) if "MARK" in p.cmdline()]


@pytest.mark.parametrize("how", sorted(DETACH))
@pytest.mark.parametrize("end", ["interrupt", "timeout"])
def test_detached_children_with_a_cleared_environment_end_with_their_cell(
        k: KernelHandle, how: str, end: str) -> None:
    code = DETACH[how]
    lang, body = (code.split("\n", 1) if code.startswith("%%") else ("", code))
    wait = {"%%node": "\nawait new Promise(r => setTimeout(r, 60000));",
            "%%bash": "\nsleep 60"}.get(lang, "\nimport time; time.sleep(60)")
    cell = (lang + "\n" if lang else "") + body + "\n" + \
        ("console.log('started');" if lang == "%%node" else
         "echo started" if lang == "%%bash" else "print('started', flush=True)") + wait
    if end == "timeout":
        k.ok("%sandbox limits timeout=3s")
    sent: list[bool] = []

    def interrupt(m: object) -> None:
        if end == "interrupt" and not sent and "started" in getattr(m, "content", {}).get(
                "text", ""):
            sent.append(True)
            k.km.interrupt_kernel()

    try:
        r = k.execute(cell, on_msg=interrupt, timeout=60)
        assert r.status == "error", r
        time.sleep(0.5)
        assert _marked(k) == []
    finally:
        if end == "timeout":
            k.ok("%sandbox limits timeout=300s")
        for pid in _marked(k):
            docker("exec", containers_of(k.pid)[0].id, "kill", "-9", str(pid), check=False)
    still_fine(k)


# ----- attribution ------------------------------------------------------------------------
DAEMONS = {
    "python": ("import subprocess\nsubprocess.Popen(['sh', '-c', 'while :; do echo LATE; "
               "echo LATE >&2; sleep 0.05; done'], start_new_session=True)\nprint('left')"),
    "node": ("%%node\nrequire('child_process').spawn('sh', ['-c', 'while :; do echo LATE; "
             "sleep 0.05; done'], {detached: true, stdio: 'inherit'}).unref();\n"
             "console.log('left');"),
}


@pytest.mark.parametrize("lang", sorted(DAEMONS))
def test_output_of_a_process_left_running_is_never_a_later_cells(
        k: KernelHandle, lang: str) -> None:
    r = k.ok(DAEMONS[lang])
    assert "left" in r.text("stdout")
    try:
        for cell in ("import time\ntime.sleep(1)\nprint('mine')",
                     "%%node\nawait new Promise(r => setTimeout(r, 1000)); console.log('mine')",
                     "%%bash\nsleep 1; echo mine"):
            r = k.ok(cell)
            assert "LATE" not in r.dump(), (cell, r)
            assert r.text("stdout") == "mine\n"
    finally:
        k.ok("%%bash\npkill -f 'LA[T]E' || true")
    still_fine(k)
