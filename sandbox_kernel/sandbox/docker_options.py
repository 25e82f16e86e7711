"""A sandbox's container options in the Engine API's terms, adapted to the engine at hand.

Docker and Podman share the API but not every option (docs/engines.md): Podman refuses the
tmpfs options `nr_inodes` and `uid=`/`gid=` (`U` chowns the tmpfs to the container user
instead, and no inode bound is possible there), and adds RLIMIT_NPROC 1048576 whenever any
ulimit is sent unless `nproc` is sent too. Under gVisor the runtime's own threads count
against the host's pids cgroup, so the user's pids limit is enforced inside (RLIMIT_NPROC,
per sandbox there) and the cgroup gets the runtime's overhead on top. Plain dicts, no docker
import, so each engine's variant is tested without one.
"""

from __future__ import annotations

from typing import Any

from .backend import RuntimeTraits
from .engine_facts import EngineFacts
from .spec import ContainerSpec, Limits

SANDBOX_UID = 1000
#: Owner of the live-install tmpfs (docs/architecture.md, "Packages"); cell code cannot write it.
INSTALLER_UID = 998
PACKAGES_DIR = "/opt/sandbox-packages"
SHM_SIZE = 64 * 1024 * 1024
CPU_PERIOD_US = 100_000
#: RLIMIT_NPROC sent to Podman counts per user across the engine's host, so it should not
#: bind: the engine's own hard limit where known (a local socket's peer), else this.
NPROC_CAP = 1_048_576
NPROC_FALLBACK = 4096
PODMAN_READ_ONLY = "ro,noexec,nosuid,nodev,size=4k"


def inodes(size: int) -> int:
    """Inodes for a tmpfs of `size` bytes: one per 4 KiB page (at least 1024)."""
    return max(1024, size // 4096)


def tmpfs_options(size: int, *, owned: bool, podman: bool) -> str:
    """Mount options of a noexec tmpfs; `owned`: the sandbox user's, mode 0700."""
    opts = ["rw", "noexec", "nosuid", "nodev", f"size={size}"]
    if podman:
        if owned:
            opts += ["U", "mode=0700"]
        return ",".join(opts)
    # nr_inodes: one per page of size. Files with data can never need more, and without a
    # bound a million empty files fill the memory limit with inodes (tmpfs counts against
    # it) instead of failing with ENOSPC.
    opts.append(f"nr_inodes={inodes(size)}")
    if owned:
        opts += [f"uid={SANDBOX_UID}", f"gid={SANDBOX_UID}", "mode=0700"]
    return ",".join(opts)


def packages_options(size: int, *, podman: bool) -> str:
    """The live-install tmpfs: exec (compiled extensions load from it) but nosuid, nodev,
    owned by the installer and read-only to everyone else. Podman cannot give it an owner;
    there the agent gives it to the installer at start (CAP_CHOWN, as /sandbox)."""
    opts = ["rw", "exec", "nosuid", "nodev", f"size={size}", "mode=0755"]
    if not podman:
        opts += [f"nr_inodes={inodes(size)}", f"uid={INSTALLER_UID}", f"gid={INSTALLER_UID}"]
    return ",".join(opts)


def ulimits(lim: Limits, traits: RuntimeTraits, podman: bool,
            nproc_ceiling: int = NPROC_CAP) -> list[dict[str, Any]]:
    """core 0, fsize, nofile; nproc where the runtime enforces pids inside or on Podman."""
    rows = [("core", 0), ("fsize", lim.file_size), ("nofile", 1024)]
    if traits.pids_inside:
        rows.append(("nproc", lim.pids))
    elif podman:
        rows.append(("nproc", max(lim.pids, min(nproc_ceiling, NPROC_CAP))))
    return [{"Name": name, "Soft": value, "Hard": value} for name, value in rows]


def host_pids(lim: Limits, traits: RuntimeTraits) -> int:
    """The host's pids cgroup limit: the user's, plus what the runtime itself runs."""
    return lim.pids * traits.pids_factor + traits.pids_overhead


def seccomp_option(facts: EngineFacts, text: str, path: str) -> str:
    """Docker takes the profile inline; Podman's compat API only by path (on its host)."""
    return f"seccomp={path if facts.kind == 'podman' else text}"


def host_config(spec: ContainerSpec, facts: EngineFacts, traits: RuntimeTraits,
                seccomp: str | None, nproc_ceiling: int = NPROC_CAP) -> dict[str, Any]:
    """The HostConfig of a hardened sandbox (architecture.md, invariant 3).

    `seccomp` is the whole `seccomp=...` security option (seccomp_option), or None.
    """
    lim = spec.limits
    podman = facts.kind == "podman"
    security = ["no-new-privileges:true"]
    if seccomp is not None:
        security.append(seccomp)
    config: dict[str, Any] = {
        "AutoRemove": True,
        "Init": True,
        "NetworkMode": spec.network,
        "ReadonlyRootfs": True,
        "CapDrop": ["ALL"],
        # Only for the agent, which starts as root and drops to its own uid at once; cell
        # code runs as uid 1000 with none (docs/architecture.md, "Integrity").
        "CapAdd": ["SETUID", "SETGID", "KILL", "SETPCAP", "CHOWN"],
        "SecurityOpt": security,
        "Memory": lim.memory,
        "MemorySwap": lim.memory,
        "NanoCpus": int(lim.cpus * 1e9),
        "PidsLimit": host_pids(lim, traits),
        "Tmpfs": {
            "/tmp": tmpfs_options(lim.tmp_size, owned=False, podman=podman),
            "/sandbox": tmpfs_options(lim.sandbox_size, owned=True, podman=podman),
            PACKAGES_DIR: packages_options(lim.packages_size, podman=podman),
            # Podman mounts writable, executable tmpfs here on a read-only root unless
            # something is mounted there already: keep them read-only, as on Docker.
            **({path: PODMAN_READ_ONLY for path in ("/run", "/var/tmp")} if podman else {}),
        },
        "ShmSize": SHM_SIZE,
        "Ulimits": ulimits(lim, traits, podman, nproc_ceiling),
        "LogConfig": {"Type": "none", "Config": {}},
    }
    if spec.runtime:
        config["Runtime"] = spec.runtime
    return config


def update_body(limits: Limits, traits: RuntimeTraits) -> dict[str, Any]:
    """Body of Docker's POST /containers/{id}/update."""
    return {"Memory": limits.memory, "MemorySwap": limits.memory,
            "NanoCpus": int(limits.cpus * 1e9), "PidsLimit": host_pids(limits, traits)}


def libpod_update_body(limits: Limits, traits: RuntimeTraits) -> dict[str, Any]:
    """Body of Podman's POST /libpod/containers/{id}/update: OCI LinuxResources."""
    return {
        "memory": {"limit": limits.memory, "swap": limits.memory},
        "cpu": {"quota": int(limits.cpus * CPU_PERIOD_US), "period": CPU_PERIOD_US},
        "pids": {"limit": host_pids(limits, traits)},
    }


def environment(spec: ContainerSpec, traits: RuntimeTraits) -> dict[str, str]:
    """The container's environment; where the runtime shows no cgroup files (gVisor), the
    agent is told the limits, so health states them instead of reading none."""
    if traits.cgroup_files:
        return dict(spec.env)
    lim = spec.limits
    return {**spec.env, "SANDBOX_AGENT_LIMITS": f"memory={lim.memory},cpus={lim.cpus:g},"
                                                f"pids={lim.pids}"}


def container_config(spec: ContainerSpec, traits: RuntimeTraits, host_config: dict[str, Any],
                     mounts: list[dict[str, object]]) -> dict[str, Any]:
    """Body of POST /containers/create. The agent starts as root and drops it at once
    (docs/architecture.md); stdin stays open once attached, so the owner's EOF ends it."""
    env = environment(spec, traits)
    return {
        "Image": spec.image, "Labels": dict(spec.labels), "Hostname": "sandbox",
        "User": "0:0", "WorkingDir": "/sandbox", "Env": [f"{k}={v}" for k, v in env.items()],
        "Tty": False, "OpenStdin": True, "StdinOnce": True, "AttachStdin": True,
        "AttachStdout": True, "AttachStderr": True,
        "HostConfig": {**host_config, **({"Mounts": mounts} if mounts else {})},
        "StopSignal": "SIGTERM", "StopTimeout": 2,
    }
