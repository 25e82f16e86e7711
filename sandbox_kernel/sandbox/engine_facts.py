"""What an engine speaking the Docker API is, read from its `info` and `version` answers.

Docker and Podman (through its Docker-compatible socket) both answer; Podman names itself
in `version` (Components "Podman Engine", Platform name). The facts decide which container
options an engine accepts and whether our limits can hold on it at all (docs/engines.md).
No docker import: the inputs are plain dicts, so recorded answers test the logic.
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from ..errors import ConfigError, EngineUnavailable
from .backend import RuntimeTraits

EngineKind = Literal["docker", "podman"]

#: gVisor's tasks in the host's pids cgroup, measured with Debian's runsc 20221219 (ptrace
#: platform) under thread and fork bombs: about 50 for the Sentry and Gofer, plus up to 9
#: per guest task (peaks of 121, 224 and 616 host tasks at 8, 20 and 64 guest tasks).
GVISOR_PIDS_FACTOR = 10
GVISOR_PIDS_OVERHEAD = 96

_TRAITS = {
    "runc": RuntimeTraits(kind="runc"),
    "crun": RuntimeTraits(kind="crun"),
    "gvisor": RuntimeTraits(kind="gvisor", pids_factor=GVISOR_PIDS_FACTOR,
                            pids_overhead=GVISOR_PIDS_OVERHEAD,
                            live_update=False, cgroup_files=False, pids_inside=True),
    "kata": RuntimeTraits(kind="kata", live_update=False, cgroup_files=False),
}


def runtime_kind(path: str) -> str:
    """runc, crun, gvisor, kata or other, from the runtime binary's name."""
    name = posixpath.basename(path or "")
    if name.startswith("runsc"):
        return "gvisor"
    if name.startswith("kata"):
        return "kata"
    if name in ("runc", "crun"):
        return name
    return "other"


@dataclass(frozen=True)
class Runtime:
    """One OCI runtime the engine has registered."""

    name: str
    path: str
    args: tuple[str, ...] = ()

    @property
    def traits(self) -> RuntimeTraits:
        kind = runtime_kind(self.path or self.name)
        return _TRAITS.get(kind, RuntimeTraits(kind=kind))


@dataclass(frozen=True)
class EngineFacts:
    """The engine as far as sandboxes care: kind, versions, cgroups, rootless, runtimes."""

    kind: EngineKind
    version: str
    api_version: str
    cgroup_version: str
    rootless: bool
    seccomp: bool
    default_runtime: str
    runtimes: tuple[Runtime, ...]
    kernel: str = "?"
    security: tuple[str, ...] = ()

    @classmethod
    def from_api(cls, info: Mapping[str, Any], version: Mapping[str, Any]) -> EngineFacts:
        """Facts from the answers to GET /info and GET /version."""
        components = [str(c.get("Name", "")) for c in version.get("Components") or []
                      if isinstance(c, Mapping)]
        platform = str((version.get("Platform") or {}).get("Name", ""))
        podman = any(c.startswith("Podman") for c in components) or "podman" in \
            platform.lower() or any(c.startswith("Conmon") for c in components)
        security = tuple(str(s) for s in info.get("SecurityOptions") or [])
        names = {dict(p.split("=", 1) for p in s.split(",") if "=" in p).get("name", "")
                 for s in security}
        runtimes = tuple(
            Runtime(str(name), str((spec or {}).get("path", "")),
                    tuple(str(a) for a in (spec or {}).get("runtimeArgs") or ()))
            for name, spec in sorted((info.get("Runtimes") or {}).items()))
        return cls(
            kind="podman" if podman else "docker",
            version=str(version.get("Version") or info.get("ServerVersion") or "?"),
            api_version=str(version.get("ApiVersion", "?")),
            cgroup_version=str(info.get("CgroupVersion") or "1"),
            rootless=bool(info.get("Rootless")) or "rootless" in names,
            seccomp="seccomp" in names,
            default_runtime=str(info.get("DefaultRuntime") or "runc"),
            runtimes=runtimes,
            kernel=str(info.get("KernelVersion", "?")),
            security=tuple(sorted(n for n in names if n)),
        )

    @property
    def name(self) -> str:
        """'Docker' or 'Podman', plus 'rootless' where it is."""
        base = "Podman" if self.kind == "podman" else "Docker"
        return f"rootless {base}" if self.rootless else base

    def traits_of(self, name: str | None) -> RuntimeTraits:
        """Traits of a container's runtime as the engine reports it; the default's if unknown
        (Podman reports "oci" for its default)."""
        for rt in self.runtimes:
            if rt.name == name:
                return rt.traits
        return self.runtime(None).traits

    def runtime(self, name: str | None) -> Runtime:
        """The runtime a container would get; ConfigError if the engine has no such runtime."""
        wanted = name or self.default_runtime
        for rt in self.runtimes:
            if rt.name == wanted:
                return rt
        if not name:  # the engine's default, even if it does not list it
            return Runtime(wanted, wanted)
        known = ", ".join(rt.name for rt in self.runtimes) or "none"
        raise ConfigError(
            f"the {self.name} engine has no runtime {name!r} registered (it has: {known}); "
            "register it in the engine's configuration (docs/engines.md) or change the "
            "runtime setting")

    def limits_refusal(self, allow_unenforced: bool = False) -> str | None:
        """Why our limits cannot hold on this engine, or None where they can."""
        if self.rootless and self.cgroup_version == "1" and not allow_unenforced:
            return (f"{self.name} on cgroup v1 cannot enforce memory, CPU or process limits "
                    "(every limit would be silently dropped), so sandbox-kernel refuses it; "
                    "use rootful Podman, Docker, or cgroup v2, or set "
                    "allow_unenforced_limits if you accept sandboxes without limits")
        return None

    def check(self, allow_unenforced: bool = False) -> None:
        reason = self.limits_refusal(allow_unenforced)
        if reason:
            raise EngineUnavailable(reason)

    def describe(self) -> str:
        """One line for `doctor`."""
        runtimes = ", ".join(rt.name for rt in self.runtimes
                             if not rt.name.startswith("io.containerd.")) or "?"
        return (f"{self.name} engine {self.version} (API {self.api_version}), cgroup "
                f"v{self.cgroup_version}, runtimes: {runtimes} (default "
                f"{self.default_runtime}), security: {', '.join(self.security) or 'none'}")
