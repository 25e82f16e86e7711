"""No privilege to gain from inside a cell: no capabilities in any process of cell code (the
agent holds three, under its own uid), no setuid or setgid binaries, mount and user
namespaces refused, system files not writable.

tests/docker/test_hardening.py checks the same status fields for a one-shot command, the
setuid bit only, and the read-only root for ``touch``; here every process of the sandbox is
read (init, agent, interpreter), setgid binaries too, and the kernel-facing files.
"""

from __future__ import annotations

import os
from typing import Any

import pytest

from .conftest import KernelHandle, probe

pytestmark = pytest.mark.docker

STATUS = r'''
import json, os
out = {}
for pid in sorted(os.listdir("/proc"), key=lambda p: (len(p), p)):
    if not pid.isdigit():
        continue
    try:
        text = open(f"/proc/{pid}/status").read()
    except OSError:
        continue
    st = dict(line.split(":\t", 1) for line in text.splitlines() if ":\t" in line)
    out[pid] = {k: st[k].strip() for k in ("Name", "Uid", "CapInh", "CapPrm", "CapEff",
                                           "CapBnd", "CapAmb", "NoNewPrivs", "Seccomp")}
out["self"] = out[str(os.getpid())]
print(json.dumps(out))
'''


def test_no_capabilities_no_new_privs_seccomp_in_every_process(k: KernelHandle) -> None:
    procs: dict[str, dict[str, Any]] = probe(k, STATUS)
    me = procs.pop("self")
    init = procs.pop("1")
    assert init["Name"] == "docker-init"
    agents = {pid: st for pid, st in procs.items() if st["Uid"].split()[0] == "999"}
    assert len(agents) == 1, procs
    (agent,) = agents.values()
    assert agent["Uid"].split() == ["999"] * 4  # the worker's only while it touches files
    assert agent["CapEff"] == agent["CapPrm"] == "00000000000000e0"  # KILL, SETGID, SETUID
    cell = {pid: st for pid, st in procs.items() if pid not in agents}
    assert sum(st["Name"] == "python" for st in cell.values()) >= 1, procs  # the worker
    for pid, st in [("self", me), *cell.items(), *agents.items()]:
        for cap in ("CapInh", "CapBnd", "CapAmb") + (() if pid in agents else
                                                    ("CapPrm", "CapEff")):
            assert st[cap] == "0000000000000000", (pid, st)
        assert st["NoNewPrivs"] == "1", (pid, st)
        assert st["Seccomp"] == "2", (pid, st)
        if pid not in agents:
            assert st["Uid"].split() == ["1000"] * 4, (pid, st)


def test_no_setuid_or_setgid_binaries(k: KernelHandle) -> None:
    out = probe(k, r'''
import json, shutil, subprocess
def find(*extra):
    p = subprocess.run(["find", "/", "-xdev", *extra, "-perm", "/6000"],
                       capture_output=True, text=True)
    return sorted(p.stdout.split())
print(json.dumps({"files": find("-type", "f"), "any": find(), "dirs": find("-type", "d"),
                  "escalators": [shutil.which(n) for n in ("sudo", "doas", "pkexec")],
                  "su": subprocess.run(["su", "-c", "id", "root"], stdin=subprocess.DEVNULL,
                                       capture_output=True, text=True).__dict__}))
''')
    assert out["files"] == []
    # Setgid *directories* (Debian's /var/mail, /var/local) only pass a group on to new
    # files, and the root filesystem is read-only: no binary gains anything.
    assert out["any"] == out["dirs"]
    assert out["escalators"] == [None] * 3
    su = out["su"]  # present, but without its setuid bit it cannot switch users
    assert (su["returncode"], su["stdout"]) == (1, "")
    assert su["stderr"].endswith("su: Authentication failure\n")


def test_mount_is_refused(k: KernelHandle) -> None:
    out = probe(k, r'''
import ctypes, errno, json, subprocess
p = subprocess.run(["mount", "-t", "tmpfs", "x", "/mnt"], capture_output=True, text=True)
libc = ctypes.CDLL(None, use_errno=True)
rc = libc.mount(b"x", b"/mnt", b"tmpfs", 0, None)
print(json.dumps([p.returncode, p.stderr, rc, errno.errorcode[ctypes.get_errno()]]))
''')
    code, stderr, rc, err = out
    assert code == 32, stderr  # mount(8): "mount failure"
    assert "must be superuser to use mount" in stderr
    assert (rc, err) == (-1, "EPERM")  # and the system call itself


def test_user_namespaces_are_refused(k: KernelHandle) -> None:
    out = probe(k, r'''
import ctypes, errno, json, os, subprocess
p = subprocess.run(["unshare", "-Ur", "id"], capture_output=True, text=True)
libc = ctypes.CDLL(None, use_errno=True)
rcs = []
for flag in (0x10000000, 0x40000000, 0x00020000):  # CLONE_NEWUSER, CLONE_NEWNET, CLONE_NEWNS
    rcs.append([libc.unshare(flag), errno.errorcode[ctypes.get_errno()]])
print(json.dumps([p.returncode, p.stdout, p.stderr, rcs]))
''')
    code, stdout, stderr, rcs = out
    assert code == 1 and stdout == ""
    assert "unshare failed: Operation not permitted" in stderr
    assert rcs == [[-1, "EPERM"]] * 3


def test_system_files_are_not_writable(k: KernelHandle) -> None:
    out = probe(k, r'''
import errno, json, os
def attempt(path, mode="w", data="1"):
    try:
        with open(path, mode) as f:
            f.write(data)
        return "WRITTEN"
    except OSError as e:
        return errno.errorcode[e.errno]
cg = "/sys/fs/cgroup/pids.max" if os.path.exists("/sys/fs/cgroup/cgroup.controllers") \
    else "/sys/fs/cgroup/pids/pids.max"
print(json.dumps({
    "/etc/passwd (append)": attempt("/etc/passwd", "a", "evil::0:0::/:/bin/sh\n"),
    "/etc/new-file": attempt("/etc/new-file"),
    "/usr/local/bin/x": attempt("/usr/local/bin/x"),
    "/proc/sysrq-trigger": attempt("/proc/sysrq-trigger", "w", "b"),
    "/proc/sys/kernel/hostname": attempt("/proc/sys/kernel/hostname", "w", "x"),
    "/sys/kernel/mm/ksm/run": attempt("/sys/kernel/mm/ksm/run"),
    "cgroup pids.max": attempt(cg, "w", "max"),
}))
''')
    # The host kernel may lack /proc/sysrq-trigger (no CONFIG_MAGIC_SYSRQ); it is then
    # absent inside as well. Where it exists, Docker mounts it read-only.
    sysrq = "EROFS" if os.path.exists("/proc/sysrq-trigger") else "ENOENT"
    assert out == {
        "/etc/passwd (append)": "EACCES",  # root-owned: the permission check comes first
        "/etc/new-file": "EROFS",
        "/usr/local/bin/x": "EROFS",
        "/proc/sysrq-trigger": sysrq,
        "/proc/sys/kernel/hostname": "EROFS",
        "/sys/kernel/mm/ksm/run": "EROFS",
        "cgroup pids.max": "EROFS",  # a cell cannot raise its own limits
    }
