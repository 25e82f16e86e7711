"""Derive sandbox-kernel's seccomp profile from Docker's default one (see README.md here).

    python3 docker/seccomp/generate.py UPSTREAM_DEFAULT_JSON > docker/seccomp/sandbox.json

Every change to Docker's default is listed below with its reason; nothing else differs.
The result keeps Docker's format (Docker and Podman parse it; the backend sends it inline
as `seccomp=<json>`).
"""

from __future__ import annotations

import json
import sys
from typing import Any

AF_VSOCK = 40
MFD_EXEC, MFD_NOEXEC_SEAL = 0x10, 0x08

#: Removed from every allow rule, so they fall to the default action (EPERM).
DENIED: dict[str, str] = {
    "io_uring_setup": "io_uring: a large, often-exploited host kernel interface",
    "io_uring_enter": "io_uring",
    "io_uring_register": "io_uring",
    "userfaultfd": "stalls kernel threads at will: a staple of kernel exploits",
    "add_key": "kernel keyrings are not namespaced",
    "request_key": "kernel keyrings",
    "keyctl": "kernel keyrings",
    "perf_event_open": "perf: host-wide observation and a wide attack surface",
    "bpf": "eBPF programs in the host kernel",
    "kexec_load": "replacing the host kernel",
    "kexec_file_load": "replacing the host kernel",
    "modify_ldt": "16-bit segments: only DOS emulators need them",
    "socketcall": "the 32-bit socket multiplexer would bypass the socket family filter",
    "socket": "allowed again below, for every family but AF_VSOCK",
    "memfd_create": "allowed again below, only for non-executable (sealed) memfds",
}

EXTRA_RULES: list[dict[str, Any]] = [
    {
        "names": ["socket"],
        "action": "SCMP_ACT_ALLOW",
        "args": [{"index": 0, "value": AF_VSOCK, "op": "SCMP_CMP_NE"}],
        "comment": "no AF_VSOCK: the host's hypervisor channels are not the sandbox's",
    },
    {
        "names": ["memfd_create"],
        "action": "SCMP_ACT_ALLOW",
        # MASKED_EQ: (flags & value) == valueTwo, i.e. MFD_NOEXEC_SEAL set, MFD_EXEC not.
        "args": [{"index": 1, "value": MFD_EXEC | MFD_NOEXEC_SEAL, "valueTwo": MFD_NOEXEC_SEAL,
                  "op": "SCMP_CMP_MASKED_EQ"}],
        "comment": "only sealed non-executable memfds: no running a binary past noexec",
    },
    {
        "names": sorted(n for n in DENIED if n not in ("socket", "memfd_create")),
        "action": "SCMP_ACT_ERRNO",
        "errnoRet": 1,
        "comment": "denied by sandbox-kernel (docker/seccomp/generate.py lists why)",
    },
]


def derive(upstream: dict[str, Any]) -> dict[str, Any]:
    """Docker's default profile minus DENIED, plus EXTRA_RULES, without compat ABIs."""
    if upstream.get("defaultAction") != "SCMP_ACT_ERRNO":
        raise SystemExit("upstream profile does not deny by default: refusing to derive from it")
    rules = []
    for rule in upstream["syscalls"]:
        names = [n for n in rule["names"] if n not in DENIED]
        if not names:
            continue
        if rule.get("action") != "SCMP_ACT_ALLOW" or names != rule["names"]:
            rule = {**rule, "names": names}
        rules.append({k: v for k, v in rule.items() if v not in (None, "", {}, [])})
    # No 32-bit (compat) syscall ABIs: notebooks never run them, and they are a second,
    # less-travelled copy of the whole syscall table.
    arch_map = [{"architecture": a["architecture"], "subArchitectures": []}
                for a in upstream["archMap"]]
    return {"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 1, "archMap": arch_map,
            "syscalls": rules + EXTRA_RULES}


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    with open(argv[1], encoding="utf-8") as f:
        upstream = json.load(f)
    json.dump(derive(upstream), sys.stdout, indent=1)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
