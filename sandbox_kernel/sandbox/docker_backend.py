"""The Docker engine backend: with its docker_* helpers, the only code that speaks the
Engine API.

It turns a ContainerSpec into a hardened container (architecture.md, invariant 3) with the
options the engine at hand accepts (docker_options.py; Docker or Podman, docs/engines.md),
attaches to the agent's stdio (docker_stream.py), and translates every engine and
connection error into the SandboxError hierarchy, once, here, naming the engine's address
and the underlying cause.
"""

from __future__ import annotations

import contextlib
import threading
import time
from pathlib import Path

from ..agent.protocol import PROTOCOL_VERSION
from ..errors import (
    ConfigError,
    EngineUnavailable,
    ImageMissing,
    SandboxError,
)
from . import docker_options
from .backend import (
    LABEL_SESSION,
    AgentStream,
    Backend,
    ContainerRecord,
    ContainerState,
    RuntimeTraits,
)
from .direct import EngineLinks
from .docker_api import EngineClient
from .docker_connect import (
    CONNECTION_ERRORS,
    Endpoint,
    cause_of,
    connect,
    engine_hint,
    explain,
    local_engine_nproc,
    resolve_endpoint,
    translated,
)
from .docker_errors import APIError, EngineError, ImageNotFound, NotFound
from .docker_stream import DockerAttachStream
from .docker_update import update_limits
from .engine_facts import EngineFacts
from .image import build_hint
from .seccomp import load_profile, profile_path
from .spec import ContainerSpec, Limits

#: The agent's uid in the image (docker/sandbox/Dockerfile).
AGENT_UID = 999
class DockerBackend(Backend):
    """Sandboxes as containers on the engine the docker CLI would use (DOCKER_HOST etc.).

    `seccomp_profile`: a profile's path; None means sandbox-kernel's own (seccomp.py).
    `allow_unenforced_limits`: accept an engine where limits cannot hold (rootless Podman
    on cgroup v1), which is otherwise refused.
    """

    def __init__(self, client: EngineClient | None = None, timeout: float = 60.0, *,
                 seccomp_profile: Path | None = None,
                 allow_unenforced_limits: bool = False, direct: bool = True) -> None:
        self._client = client
        self._timeout = timeout
        self._lock = threading.Lock()
        self._endpoint: Endpoint | None = None
        self._facts: EngineFacts | None = None
        self._seccomp_path = seccomp_profile
        self._seccomp: str | None = None
        self._nproc: int | None = None
        self.allow_unenforced_limits = allow_unenforced_limits
        self.direct = direct  # offer agents a direct link (sandbox/direct.py)
        self._links: EngineLinks | None = None

    @property
    def where(self) -> str:
        """The engine's address and where it came from, for messages."""
        if self._endpoint is None and self._client is not None:
            return self._client.base_url
        if self._endpoint is None:
            with contextlib.suppress(EngineError):
                self._endpoint = resolve_endpoint()
        return self._endpoint.describe() if self._endpoint else "an unknown address"

    @property
    def client(self) -> EngineClient:
        with self._lock:
            if self._client is None:
                try:
                    self._endpoint = resolve_endpoint()
                    self._client = connect(self._endpoint, self._timeout)
                except EngineError as exc:
                    at = f" at {self._endpoint.describe()}" if self._endpoint else ""
                    raise EngineUnavailable(f"no Docker engine is reachable{at}: "
                                            f"{cause_of(exc)}; {engine_hint()}") from exc
            return self._client

    @property
    def api(self) -> EngineClient:
        return self.client

    @property
    def facts(self) -> EngineFacts:
        """What the engine is (read once): Docker or Podman, cgroups, runtimes."""
        if self._facts is None:
            with translated("read the engine's facts", self.where):
                self._facts = EngineFacts.from_api(self.api.info(), self.api.version())
        return self._facts

    def check_runtime(self, runtime: str | None) -> RuntimeTraits:
        facts = self.facts
        facts.check(self.allow_unenforced_limits)
        return facts.runtime(runtime).traits

    def image_labels(self, image: str) -> dict[str, str]:
        try:
            config = self.api.inspect_image(image).get("Config") or {}
        except ImageNotFound as exc:
            raise ImageMissing(
                f"the sandbox image {image!r} is not on the engine at {self.where}; "
                f"{build_hint(image)}"
            ) from exc
        except (*CONNECTION_ERRORS, APIError) as exc:
            raise EngineUnavailable(f"no Docker engine is reachable at {self.where}: "
                                    f"{cause_of(exc)}; {engine_hint()}") from exc
        return dict(config.get("Labels") or {})

    def check(self, image: str) -> None:
        with translated("reach the Docker engine", self.where):
            self.api.ping()
        self.facts.check(self.allow_unenforced_limits)
        proto = self.image_labels(image).get("sandbox_kernel.protocol")
        if proto is not None and proto != str(PROTOCOL_VERSION):
            raise ImageMissing(
                f"the image {image!r} carries agent protocol {proto}, but this sandbox-kernel "
                f"speaks protocol {PROTOCOL_VERSION}; re{build_hint(image)}"
            )

    def _nproc_ceiling(self) -> int:
        """What an explicit RLIMIT_NPROC may be: the local engine's own hard limit, if known."""
        if self._nproc is None:
            found = local_engine_nproc(self._endpoint) if self._endpoint else None
            self._nproc = found or docker_options.NPROC_FALLBACK
        return self._nproc

    def _seccomp_option(self) -> str:
        if self._seccomp_path is None:
            try:
                self._seccomp_path = profile_path()
            except FileNotFoundError as exc:
                raise ConfigError(f"sandbox-kernel's seccomp profile is missing ({exc}); "
                                  "reinstall sandbox-kernel") from None
        if self._seccomp is None:
            self._seccomp = load_profile(self._seccomp_path)
        return docker_options.seccomp_option(self.facts, self._seccomp, str(self._seccomp_path))

    @property
    def links(self) -> EngineLinks:
        """The direct links' directories (none unless the engine runs on this machine)."""
        if self._links is None:
            url = self._endpoint.url if self._endpoint else self.api.base_url
            self._links = EngineLinks(url, self.direct)
        return self._links

    def create(self, spec: ContainerSpec, started: bool = False) -> str:
        traits = self.check_runtime(spec.runtime)
        host_config = docker_options.host_config(
            spec, self.facts, traits, self._seccomp_option(), self._nproc_ceiling())

        def create(mounts: list[dict[str, object]]) -> str:
            with translated("create a sandbox container", self.where, image=spec.image):
                return self.api.create_container(
                    docker_options.container_config(spec, traits, host_config, mounts),
                    spec.name)

        cid = self.links.create_with(spec.labels.get(LABEL_SESSION, ""), create)
        if started:
            try:
                with translated("start the sandbox container", self.where):
                    self.api.start(cid)
            except BaseException:
                self.remove(cid)
                raise
        return cid

    def attach(self, container_id: str) -> AgentStream:
        with translated("attach to the sandbox", self.where):
            raw = self.api.attach(container_id)
        return DockerAttachStream(raw)

    def start(self, container_id: str) -> None:
        with translated("start the sandbox container", self.where):
            self.api.start(container_id)

    def rename(self, container_id: str, name: str) -> bool:
        try:
            self.api.rename(container_id, name)
            return True
        except APIError:
            return False
        except CONNECTION_ERRORS as exc:
            raise EngineUnavailable(f"the engine at {self.where} stopped answering "
                                    f"({cause_of(exc)}); {engine_hint()}") from exc

    def update(self, container_id: str, limits: Limits) -> None:
        update_limits(self, container_id, limits)

    def state(self, container_id: str) -> ContainerState:
        try:
            info = self.api.inspect_container(container_id)
        except NotFound:
            return ContainerState(exists=False)
        except (*CONNECTION_ERRORS, APIError) as exc:
            raise EngineUnavailable(f"the engine at {self.where} stopped answering "
                                    f"({cause_of(exc)}); {engine_hint()}") from exc
        st = info.get("State") or {}
        return ContainerState(
            exists=True,
            status=str(st.get("Status", "unknown")),
            oom_killed=bool(st.get("OOMKilled")),
            exit_code=st.get("ExitCode"),
        )

    def link_dir(self, container_id: str, session_id: str) -> tuple[Path, str] | None:
        return self.links.place(session_id)

    def link_done(self, container_id: str, session_id: str) -> None:
        self.links.done(container_id, session_id)

    def sweep_links(self, live_sessions: set[str]) -> None:
        self.links.sweep(live_sessions)

    def remove(self, container_id: str) -> None:
        """Force-remove; if auto-remove is already under way, wait (briefly) until it is gone."""
        if self._links is not None:
            self._links.done(container_id)
        try:
            self.api.remove_container(container_id, force=True)
        except NotFound:
            return
        except APIError as exc:
            if exc.status_code == 404:
                return
            if "already in progress" not in explain(exc):
                raise SandboxError(f"the engine refused to remove the sandbox: "
                                   f"{explain(exc)}") from exc
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and self.state(container_id).exists:
                time.sleep(0.05)
        except CONNECTION_ERRORS as exc:
            raise EngineUnavailable(f"the engine at {self.where} stopped answering "
                                    f"({cause_of(exc)}); {engine_hint()}") from exc

    def list_owned(self, all_states: bool = True) -> list[ContainerRecord]:
        with translated("list sandbox containers", self.where):
            rows = self.api.containers(all_states, LABEL_SESSION)
        return [
            ContainerRecord(
                id=r["Id"],
                name=(r.get("Names") or ["/?"])[0].lstrip("/"),
                status=str(r.get("State", "")),
                labels=dict(r.get("Labels") or {}),
            )
            for r in rows
            if LABEL_SESSION in (r.get("Labels") or {})
        ]

    def exec_in(self, container_id: str, argv: list[str]) -> tuple[int, bytes]:
        # As the agent's uid, without capabilities: cell code (uid 1000) cannot trace a
        # probe and change what it reports.
        with translated("run a probe in the sandbox", self.where):
            return self.api.exec_run(container_id, argv, user=f"{AGENT_UID}:{AGENT_UID}")

    def versions(self) -> dict[str, str]:
        f = self.facts
        return {
            "name": f.name,
            "engine": f.version,
            "api": f.api_version,
            "cgroup": f.cgroup_version,
            "runtime": f.default_runtime,
            "runtimes": ", ".join(rt.name for rt in f.runtimes),
            "security": ", ".join(f.security),
            "kernel": f.kernel,
            "address": self.where,
            "summary": f.describe(),
        }
