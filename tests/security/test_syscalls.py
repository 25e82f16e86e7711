"""The seccomp profile of our own, from inside cells: what widens the host kernel's attack
surface fails, ordinary notebook work does not (docker/seccomp/generate.py lists the calls).

Under gVisor (runsc) no call reaches the host kernel: the Sentry answers them itself, and
the OCI profile is not loaded (docs/engines.md); there the cell checks that AF_VSOCK and
the kernel keyrings are still unavailable and that notebook work runs.
"""

from __future__ import annotations

import os

import pytest

from .conftest import KernelHandle, probe

pytestmark = pytest.mark.docker

GVISOR = os.environ.get("SANDBOX_RUNTIME") == "runsc"

SYSCALLS = r'''
import ctypes, errno, json, mmap, os, socket, subprocess, sys
libc = ctypes.CDLL(None, use_errno=True)

def call(nr, *args):
    r = libc.syscall(ctypes.c_long(nr), *[ctypes.c_long(a) for a in args])
    return "ok" if r >= 0 else errno.errorcode.get(ctypes.get_errno(), str(ctypes.get_errno()))

out = {}
params = ctypes.create_string_buffer(120)
out["io_uring_setup"] = call(425, 4, ctypes.addressof(params))
out["userfaultfd"] = call(323, 0)
out["keyctl"] = call(250, 0, 0)
out["add_key"] = call(248, 0, 0, 0, 0, 0)
attr = ctypes.create_string_buffer(128)
ctypes.memmove(attr, (128).to_bytes(4, "little") * 2, 8)
out["perf_event_open"] = call(298, ctypes.addressof(attr), 0, -1, -1, 0)
out["bpf"] = call(321, 0, 0, 0)
out["kexec_load"] = call(246, 0, 0, 0, 0)
try:  # creating one to see it refused; never connected
    socket.socket(40, socket.SOCK_STREAM).close()
    out["vsock"] = "CREATED"
except OSError as e:
    out["vsock"] = errno.errorcode[e.errno]
name = ctypes.create_string_buffer(b"x")
out["memfd_plain"] = call(319, ctypes.addressof(name), 1)
out["memfd_sealed"] = call(319, ctypes.addressof(name), 1 | 8)
try:
    fd = os.memfd_create("x", os.MFD_CLOEXEC)
    os.write(fd, open("/bin/true", "rb").read())
    r = subprocess.run([f"/proc/self/fd/{fd}"], pass_fds=(fd,))
    out["memfd_exec"] = f"ran, exit {r.returncode}"
except OSError as e:
    out["memfd_exec"] = errno.errorcode[e.errno]
print(json.dumps(out))
'''

# A 64-bit process making an i386 system call (int 0x80: getpid) in a child process.
COMPAT = r'''
import ctypes, json, mmap, subprocess, sys
child = """
import ctypes, mmap, os
m = mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
m.write(bytes([0xb8, 20, 0, 0, 0, 0xcd, 0x80, 0xc3]))
f = ctypes.CFUNCTYPE(ctypes.c_int)(ctypes.addressof(ctypes.c_char.from_buffer(m)))
print(f() == os.getpid())
"""
r = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True)
print(json.dumps([r.returncode, r.stdout.strip()]))
'''

NOTEBOOK_WORK = r'''
import json, os, subprocess, threading
import numpy as np
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
a = np.random.default_rng(0).random((200, 200))
done = []
ts = [threading.Thread(target=lambda: done.append(float((a @ a).sum()) > 0)) for _ in range(4)]
[t.start() for t in ts]
[t.join() for t in ts]
fig, ax = plt.subplots()
ax.plot([1, 2, 3])
fig.savefig("/tmp/plot.png")
plain = {k: v for k, v in os.environ.items() if k != "FORCE_COLOR"}  # ipykernel sets it
node = subprocess.run(["node", "-e", "console.log(require('os').cpus().length > 0)"],
                      capture_output=True, text=True, env=plain)
print(json.dumps({"threads": done, "plot": open("/tmp/plot.png", "rb").read(4).hex(),
                  "node": node.stdout.strip(), "sh": subprocess.run(["sh", "-c", "echo hi"],
                  capture_output=True, text=True).stdout}))
'''


@pytest.mark.skipif(GVISOR, reason="gVisor answers these itself; see the next test")
def test_host_kernel_attack_surface_is_denied(k: KernelHandle) -> None:
    got = probe(k, SYSCALLS)
    denied = {name: got.pop(name) for name in ("io_uring_setup", "userfaultfd", "keyctl",
                                                 "add_key", "perf_event_open", "bpf",
                                                 "kexec_load", "vsock", "memfd_plain")}
    assert denied == dict.fromkeys(denied, "EPERM")
    # the one memfd a profile lets through cannot run a binary past noexec
    assert got["memfd_exec"] == "EPERM"
    assert got["memfd_sealed"] in ("ok", "EINVAL")  # EINVAL: a kernel before 6.3


@pytest.mark.skipif(not GVISOR, reason="the gVisor variant of the test above")
def test_under_gvisor_vsock_and_keyrings_are_unavailable(k: KernelHandle) -> None:
    got = probe(k, SYSCALLS)
    assert got["vsock"] in ("EAFNOSUPPORT", "EPERM")
    assert got["keyctl"] in ("EACCES", "EPERM", "ENOSYS")
    assert got["bpf"] in ("EPERM", "ENOSYS")


def test_compat_32_bit_system_calls_are_refused(k: KernelHandle) -> None:
    code, out = probe(k, COMPAT)
    # -31: killed by SIGSYS (runc, Podman); under gVisor the call fails inside the Sentry
    assert out != "True", (code, out)


def test_ordinary_notebook_work_still_runs(k: KernelHandle) -> None:
    got = probe(k, NOTEBOOK_WORK)
    assert got == {"threads": [True] * 4, "plot": "89504e47", "node": "true", "sh": "hi\n"}
