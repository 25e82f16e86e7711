"""The committed seccomp profile (docker/seccomp/sandbox.json) and its generator.

What the profile must deny is checked here on the JSON; tests/security/test_syscalls.py
checks the same from cells on a real engine.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest

from sandbox_kernel.errors import ConfigError
from sandbox_kernel.sandbox.seccomp import load_profile, profile_path

ROOT = Path(__file__).resolve().parents[2]
MUST_DENY = {"io_uring_setup", "io_uring_enter", "io_uring_register", "userfaultfd", "add_key",
             "request_key", "keyctl", "perf_event_open", "bpf", "kexec_load", "kexec_file_load",
             "socketcall", "modify_ldt"}


def generator() -> Any:
    spec = importlib.util.spec_from_file_location("seccomp_generate",
                                                  ROOT / "docker/seccomp/generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def profile() -> dict[str, Any]:
    return dict(json.loads(load_profile()))


def allowed_by(profile: dict[str, Any], name: str) -> list[dict[str, Any]]:
    return [r for r in profile["syscalls"]
            if name in r["names"] and r["action"] == "SCMP_ACT_ALLOW"]


def test_the_profile_is_the_packaged_file() -> None:
    assert profile_path() == ROOT / "docker/seccomp/sandbox.json"
    assert "docker/seccomp/sandbox.json" in (ROOT / "pyproject.toml").read_text()


def test_denies_by_default_with_eperm(profile: dict[str, Any]) -> None:
    assert profile["defaultAction"] == "SCMP_ACT_ERRNO"
    assert profile.get("defaultErrnoRet", 1) == 1


@pytest.mark.parametrize("name", sorted(MUST_DENY))
def test_never_allowed(profile: dict[str, Any], name: str) -> None:
    assert allowed_by(profile, name) == []


def test_sockets_of_every_family_but_vsock(profile: dict[str, Any]) -> None:
    (rule,) = allowed_by(profile, "socket")
    assert rule["names"] == ["socket"]
    assert rule["args"] == [{"index": 0, "value": 40, "op": "SCMP_CMP_NE"}]


def test_memfd_only_sealed_and_not_executable(profile: dict[str, Any]) -> None:
    (rule,) = allowed_by(profile, "memfd_create")
    (arg,) = rule["args"]
    assert (arg["index"], arg["op"]) == (1, "SCMP_CMP_MASKED_EQ")
    mask, want = arg["value"], arg["valueTwo"]
    assert mask & 0x10 and mask & 0x08 and want == 0x08  # MFD_EXEC clear, MFD_NOEXEC_SEAL set


def test_no_compat_syscall_abis(profile: dict[str, Any]) -> None:
    assert all(a["subArchitectures"] == [] for a in profile["archMap"])
    assert "SCMP_ARCH_X86_64" in {a["architecture"] for a in profile["archMap"]}


def test_what_notebooks_need_stays(profile: dict[str, Any]) -> None:
    for name in ("clone", "execve", "mmap", "futex", "epoll_wait", "ptrace", "pipe2", "openat"):
        assert allowed_by(profile, name), name
    clone3 = [r for r in profile["syscalls"] if "clone3" in r["names"]
              and r["action"] == "SCMP_ACT_ERRNO" and r.get("errnoRet") == 38]
    assert clone3, "clone3 must answer ENOSYS so glibc falls back to clone"


def test_generator_removes_and_adds_only_what_it_lists() -> None:
    gen = generator()
    upstream = {"defaultAction": "SCMP_ACT_ERRNO",
                "archMap": [{"architecture": "SCMP_ARCH_X86_64",
                             "subArchitectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X32"]}],
                "syscalls": [{"names": ["read", "io_uring_setup", "socket", "memfd_create"],
                              "action": "SCMP_ACT_ALLOW", "args": [], "comment": "",
                              "includes": {}, "excludes": {}},
                             {"names": ["bpf"], "action": "SCMP_ACT_ALLOW",
                              "includes": {"caps": ["CAP_SYS_ADMIN"]}}]}
    out = gen.derive(upstream)
    assert out["syscalls"][0] == {"names": ["read"], "action": "SCMP_ACT_ALLOW"}
    assert [r["names"] for r in out["syscalls"][1:3]] == [["socket"], ["memfd_create"]]
    assert "bpf" not in [n for r in out["syscalls"] if r["action"] == "SCMP_ACT_ALLOW"
                         for n in r["names"]]
    assert out["archMap"] == [{"architecture": "SCMP_ARCH_X86_64", "subArchitectures": []}]
    with pytest.raises(SystemExit, match="does not deny by default"):
        gen.derive({**upstream, "defaultAction": "SCMP_ACT_ALLOW"})


def test_a_profile_that_allows_by_default_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "p.json"
    bad.write_text('{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": []}')
    with pytest.raises(ConfigError, match="does not deny by default"):
        load_profile(bad)
    bad.write_text("{")
    with pytest.raises(ConfigError, match="unreadable"):
        load_profile(bad)
