"""Secrets of the host never reach the sandbox: not the kernel's environment, not its
connection file or HMAC key, and ``docker inspect`` shows none of them either.

tests/kernel/test_execution.py::test_host_environment_does_not_reach_the_sandbox checks
``os.environ`` and ``/proc/1/environ`` of one kernel; here every process's environment and
command line is searched, for the canaries and for this kernel's own HMAC key.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kernel.conftest import docker

from .conftest import KernelHandle, container_processes, probe

pytestmark = pytest.mark.docker

CANARY = "c4nary-0f-the-h0st-5e3d"
HOST_ONLY = {"SANDBOX_SECRET_CANARY": CANARY, "JUPYTER_TOKEN": CANARY,
             "AWS_SECRET_ACCESS_KEY": CANARY, "DOCKER_CONFIG": "/" + CANARY}


@pytest.fixture(scope="module")
def sk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KernelHandle]:
    h = KernelHandle("sandbox", cwd=tmp_path_factory.mktemp("secrets-cwd"),
                     env={**os.environ, **HOST_ONLY})
    try:
        yield h
    finally:
        h.close()


def _key(sk: KernelHandle) -> str:
    key = json.loads(Path(sk.km.connection_file).read_text())["key"]
    assert isinstance(key, str) and len(key) >= 32
    assert key.encode() == sk.km.session.key
    return key


SCAN = r'''
import json, os
found, names, scanned = [], set(), 0
for pid in os.listdir("/proc"):
    if not pid.isdigit():
        continue
    for what in ("environ", "cmdline"):
        try:
            data = open(f"/proc/{pid}/{what}", "rb").read()
        except OSError as e:
            found.append([pid, what, "unreadable: " + e.strerror])
            continue
        scanned += 1
        for needle in NEEDLES:
            if needle.encode() in data:
                found.append([pid, what, needle[:6] + "..."])
        if what == "environ":
            names |= {v.split(b"=", 1)[0].decode() for v in data.split(b"\0") if v}
names |= set(os.environ)
print(json.dumps({"found": found, "names": sorted(names), "scanned": scanned}))
'''


def test_no_canary_and_no_key_in_any_process(sk: KernelHandle) -> None:
    needles = [CANARY, _key(sk)]
    out: dict[str, Any] = probe(sk, f"NEEDLES = {needles!r}\n" + SCAN)
    # From a cell, init's and the agent's environments are unreadable (another uid).
    assert [f for f in out["found"] if not f[2].startswith("unreadable")] == []
    # From the host every process of the sandbox can be read: init, agent, interpreter.
    seen, names = 0, set(out["names"])
    for p in container_processes(sk):
        environ, cmdline = p.environ(), " ".join(p.cmdline())
        seen += 1
        names |= set(environ)
        for needle in needles:
            assert needle not in cmdline and needle not in "\0".join(
                f"{k}={v}" for k, v in environ.items()), (p.pid, p.name())
    assert seen >= 3
    print("\nvariables inside:", sorted(names))
    assert "PATH" in names and "SANDBOX" in names  # the scan did read environments
    assert not names & set(HOST_ONLY)
    assert not [n for n in names if n.startswith(("JUPYTER", "JPY_", "DOCKER", "KERNEL",
                                                  "AWS_", "CONDA", "VIRTUAL_ENV"))], names


def test_no_connection_file_inside(sk: KernelHandle) -> None:
    name = Path(sk.km.connection_file).name  # this one's (jupyter_client names it tmp*.json)
    out = probe(sk, r'''
import json, subprocess
open("/sandbox/kernel-positive-control.json", "w").close()  # proves /sandbox is searched
p = subprocess.run(["find", "/", "(", "-path", "/proc", "-o", "-path", "/sys", ")", "-prune",
                    "-o", "(", "-name", "kernel-*.json", "-o", "-name", NAME, ")", "-print"],
                   capture_output=True, text=True)
print(json.dumps(p.stdout.split()))
'''.replace("NAME", repr(name)))
    assert out == ["/sandbox/kernel-positive-control.json"]


def test_docker_inspect_shows_no_secret(sk: KernelHandle) -> None:
    sk.ok("x = 1")
    raw = docker("inspect", sk.container().id).stdout
    (info,) = json.loads(raw)
    config = info["Config"]
    assert config["Env"] and config["Labels"]  # the fields are there to be read
    text = json.dumps([config["Env"], config["Cmd"], config["Entrypoint"], config["Labels"]])
    for secret in (CANARY, _key(sk), Path(sk.km.connection_file).name):
        assert secret not in raw
        assert secret not in text
    assert not [e for e in config["Env"] if e.split("=", 1)[0] in HOST_ONLY]
