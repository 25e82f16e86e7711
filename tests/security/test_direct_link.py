"""The direct link (sandbox/direct.py) is the agent's alone: cell code can neither find,
reach nor forge it, and the host keeps the attach as the container's lifeline.

docs/architecture.md, "The direct link", says why each of these holds.
"""

from __future__ import annotations

import os

import pytest

from sandbox_kernel.sandbox.direct import AGENT_DIR
from sandbox_kernel.sandbox.direct_stream import DirectStream
from sandbox_kernel.sandbox.docker_backend import DockerBackend
from sandbox_kernel.sandbox.docker_stream import DockerAttachStream
from sandbox_kernel.sandbox.manager import SandboxManager

from .conftest import ATTEMPT, KernelHandle, probe
from .test_integrity import still_fine

pytestmark = pytest.mark.docker

REACH = ATTEMPT + r'''
import socket
attempt("list", lambda: os.listdir(DIR))
attempt("create", lambda: open(DIR + "/forged.sock", "w"))
def connect(path):
    s = socket.socket(socket.AF_UNIX)
    try:
        s.connect(path)
    finally:
        s.close()
attempt("guess", lambda: connect(DIR + "/0.sock"))
named = [line.split()[-1] for line in open("/proc/net/unix").read().splitlines()[1:]
         if len(line.split()) > 7]
res["named sockets"] = [p for p in named if p.startswith(DIR)]
for p in named:
    attempt("connect " + p, lambda: connect(p))
res["mode"] = oct(os.stat(DIR).st_mode & 0o777)
print(json.dumps(res))
'''


def test_cell_code_cannot_find_reach_or_plant_a_link_socket(k: KernelHandle) -> None:
    out = probe(k, f"DIR = {AGENT_DIR!r}\n" + REACH)
    assert "ALLOWED" not in out.values(), out
    assert out["list"] == "EACCES" and out["create"] in ("EACCES", "EROFS", "ENOENT")
    assert out["guess"] in ("ENOENT", "EACCES") and out["named sockets"] == []  # unlinked
    assert out["mode"] == "0o711"
    still_fine(k)  # the agent's frames still flow on its link


def test_shell_cannot_list_or_write_the_link_directory(k: KernelHandle) -> None:
    r = k.execute(f"""%%bash
ls {AGENT_DIR} >/dev/null 2>&1 && echo LISTED
touch {AGENT_DIR}/x 2>/dev/null && echo WROTE
socat - UNIX-CONNECT:{AGENT_DIR}/x 2>/dev/null && echo CONNECTED
echo done""")
    assert r.text("stdout") == "done\n", r
    still_fine(k)


@pytest.mark.parametrize("direct", [True, False])
def test_sessions_take_the_direct_link_unless_it_is_off_or_out_of_reach(direct: bool) -> None:
    runtime = os.environ.get("SANDBOX_RUNTIME") or None
    backend = DockerBackend(direct=direct)
    with SandboxManager(backend=backend, cleanup_interval=0, reap_on_start=False,
                        runtime=runtime) as m:
        s = m.open_session()
        kind = type(s.core.channel.stream)
        assert s.execute_command("echo hi").stdout == "hi\n"
        dirs = backend.links.dirs  # where its directories would be
        left = os.listdir(dirs.root) if dirs is not None and dirs.root.is_dir() else []
    # gVisor's sandbox cannot connect to a host socket (no --host-uds): the attach it is.
    assert kind is (DirectStream if direct and runtime != "runsc" else DockerAttachStream)
    assert left == []  # a connected (or refused) session's directory is gone at once
