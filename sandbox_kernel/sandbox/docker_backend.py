"""The Docker engine backend: the only module that imports `docker`.

It turns a ContainerSpec into a hardened container (architecture.md, invariant 3), attaches
to the agent's stdio with docker-py's own stream demultiplexing, and translates every
docker-py and connection error into the SandboxError hierarchy, once, here.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import docker.errors
import requests.exceptions
from docker.types import LogConfig, Ulimit
from docker.utils.socket import frames_iter

import docker

from ..agent.protocol import PROTOCOL_VERSION
from ..errors import EngineUnavailable, ImageMissing, SandboxError, SessionGone
from .backend import (
    LABEL_SESSION,
    AgentStream,
    Backend,
    ContainerRecord,
    ContainerState,
)
from .spec import ContainerSpec, Limits

ENGINE_HINT = (
    "start one (e.g. 'sudo systemctl start docker', or 'make engine' in a sandbox-kernel "
    "checkout) or point DOCKER_HOST at one"
)


def _explain(exc: BaseException) -> str:
    text = getattr(exc, "explanation", None) or str(exc)
    return " ".join(str(text).split())[:300]


@contextlib.contextmanager
def _translated(what: str) -> Iterator[None]:
    """Turn docker-py and connection errors into one-sentence SandboxErrors."""
    try:
        yield
    except SandboxError:
        raise
    except docker.errors.ImageNotFound as exc:
        raise ImageMissing(
            f"cannot {what}: the image is missing ({_explain(exc)}); build it with "
            "'sandbox-kernel build-image'") from exc
    except docker.errors.NotFound as exc:
        raise SessionGone(f"cannot {what}: the container no longer exists") from exc
    except docker.errors.APIError as exc:
        text = _explain(exc)
        if "is paused" in text:
            raise SessionGone(f"cannot {what}: the container was paused from outside") from exc
        if "is not running" in text or "is restarting" in text:
            raise SessionGone(f"cannot {what}: the container is not running") from exc
        raise SandboxError(f"Docker refused to {what}: {text}") from exc
    except (requests.exceptions.ConnectionError, ConnectionError, FileNotFoundError) as exc:
        raise EngineUnavailable(f"the Docker engine stopped answering; {ENGINE_HINT}") from exc
    except requests.exceptions.ReadTimeout as exc:
        raise EngineUnavailable(f"the Docker engine did not answer in time ({what})") from exc
    except docker.errors.DockerException as exc:
        raise SandboxError(f"cannot {what}: {_explain(exc)}") from exc


def _inodes(size: int) -> int:
    """Inodes for a tmpfs of `size` bytes: one per 4 KiB page (at least 1024)."""
    return max(1024, size // 4096)


class DockerAttachStream(AgentStream):
    """The container's attached stdin/stdout/stderr over the engine's hijacked socket."""

    def __init__(self, raw: Any) -> None:
        self._raw = raw
        self._sock: socket.socket = getattr(raw, "_sock", raw)
        self._closed = False
        self._lock = threading.Lock()

    def send(self, data: bytes) -> None:
        try:
            self._sock.sendall(data)
        except OSError as exc:
            raise SessionGone("the sandbox's connection is closed") from exc

    def frames(self) -> Iterator[tuple[int, bytes]]:
        try:
            for stream, chunk in frames_iter(self._raw, tty=False):
                if chunk:
                    yield stream, chunk
        except (OSError, ValueError):
            return

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        for step in (lambda: self._sock.shutdown(socket.SHUT_RDWR), self._raw.close,
                     self._sock.close):
            with contextlib.suppress(OSError):
                step()


class DockerBackend(Backend):
    """Sandboxes as Docker containers on the engine docker-py finds (DOCKER_HOST etc.)."""

    def __init__(self, client: Any = None, timeout: float = 60.0) -> None:
        self._client = client
        self._timeout = timeout
        self._lock = threading.Lock()

    @property
    def client(self) -> Any:
        with self._lock:
            if self._client is None:
                try:
                    self._client = docker.DockerClient.from_env(timeout=self._timeout)
                except docker.errors.DockerException as exc:
                    raise EngineUnavailable(f"no Docker engine is reachable; {ENGINE_HINT}") \
                        from exc
            return self._client

    @property
    def api(self) -> Any:
        return self.client.api

    def image_labels(self, image: str) -> dict[str, str]:
        try:
            config = self.api.inspect_image(image).get("Config") or {}
        except docker.errors.ImageNotFound as exc:
            raise ImageMissing(
                f"the sandbox image {image!r} is not on this Docker engine; build it with "
                "'sandbox-kernel build-image'"
            ) from exc
        except (requests.exceptions.ConnectionError, docker.errors.APIError) as exc:
            raise EngineUnavailable(f"no Docker engine is reachable; {ENGINE_HINT}") from exc
        return dict(config.get("Labels") or {})

    def check(self, image: str) -> None:
        with _translated("reach the Docker engine"):
            self.api.ping()
        proto = self.image_labels(image).get("sandbox_kernel.protocol")
        if proto is not None and proto != str(PROTOCOL_VERSION):
            raise ImageMissing(
                f"the image {image!r} carries agent protocol {proto}, but this sandbox-kernel "
                f"speaks protocol {PROTOCOL_VERSION}; rebuild it with 'sandbox-kernel build-image'"
            )

    def create(self, spec: ContainerSpec, started: bool = False) -> str:
        lim = spec.limits
        host_config = self.api.create_host_config(
            auto_remove=True,
            init=True,
            network_mode=spec.network,
            read_only=True,
            cap_drop=["ALL"],
            security_opt=["no-new-privileges:true"],
            mem_limit=lim.memory,
            memswap_limit=lim.memory,
            nano_cpus=int(lim.cpus * 1e9),
            pids_limit=lim.pids,
            # nr_inodes: one per page of size. Files with data can never need more, and
            # without a bound a million empty files fill the memory limit with inodes
            # (tmpfs counts against it) instead of failing with ENOSPC.
            tmpfs={
                "/tmp": f"rw,noexec,nosuid,nodev,size={lim.tmp_size},"
                        f"nr_inodes={_inodes(lim.tmp_size)}",
                "/sandbox": f"rw,noexec,nosuid,nodev,size={lim.sandbox_size},"
                            f"nr_inodes={_inodes(lim.sandbox_size)},uid=1000,gid=1000,mode=0700",
            },
            shm_size=64 * 1024 * 1024,
            ulimits=[
                Ulimit(name="core", soft=0, hard=0),
                Ulimit(name="fsize", soft=lim.file_size, hard=lim.file_size),
                Ulimit(name="nofile", soft=1024, hard=1024),
            ],
            log_config=LogConfig(type="none"),
        )
        with _translated("create a sandbox container"):
            cid: str = self.api.create_container(
                spec.image,
                name=spec.name,
                labels=spec.labels,
                environment=spec.env,
                user="1000:1000",
                hostname="sandbox",
                working_dir="/sandbox",
                stdin_open=True,
                detach=False,  # with stdin_open: StdinOnce, so the owner's EOF ends the agent
                host_config=host_config,
                stop_signal="SIGTERM",
                stop_timeout=2,
            )["Id"]
            if started:
                try:
                    self.api.start(cid)
                except BaseException:
                    self.remove(cid)
                    raise
        return cid

    def attach(self, container_id: str) -> AgentStream:
        with _translated("attach to the sandbox"):
            raw = self.api.attach_socket(
                container_id, params={"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1})
        return DockerAttachStream(raw)

    def start(self, container_id: str) -> None:
        with _translated("start the sandbox container"):
            self.api.start(container_id)

    def rename(self, container_id: str, name: str) -> bool:
        try:
            self.api.rename(container_id, name)
            return True
        except (docker.errors.NotFound, docker.errors.APIError):
            return False
        except requests.exceptions.ConnectionError as exc:
            raise EngineUnavailable(f"the Docker engine stopped answering; {ENGINE_HINT}") \
                from exc

    def update(self, container_id: str, limits: Limits) -> None:
        # docker-py's update_container cannot set NanoCpus or PidsLimit; the Engine API can.
        data = {
            "Memory": limits.memory,
            "MemorySwap": limits.memory,
            "NanoCpus": int(limits.cpus * 1e9),
            "PidsLimit": limits.pids,
        }
        with _translated("change the sandbox's limits"):
            url = self.api._url("/containers/{0}/update", container_id)
            self.api._result(self.api._post_json(url, data=data), True)

    def state(self, container_id: str) -> ContainerState:
        try:
            info = self.api.inspect_container(container_id)
        except docker.errors.NotFound:
            return ContainerState(exists=False)
        except (requests.exceptions.ConnectionError, docker.errors.APIError) as exc:
            raise EngineUnavailable(f"the Docker engine stopped answering; {ENGINE_HINT}") \
                from exc
        st = info.get("State") or {}
        return ContainerState(
            exists=True,
            status=str(st.get("Status", "unknown")),
            oom_killed=bool(st.get("OOMKilled")),
            exit_code=st.get("ExitCode"),
        )

    def remove(self, container_id: str) -> None:
        """Force-remove; if auto-remove is already under way, wait (briefly) until it is gone."""
        try:
            self.api.remove_container(container_id, force=True)
        except docker.errors.NotFound:
            return
        except docker.errors.APIError as exc:
            if exc.status_code == 404:
                return
            if "already in progress" not in _explain(exc):
                raise SandboxError(f"Docker refused to remove the sandbox: {_explain(exc)}") \
                    from exc
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and self.state(container_id).exists:
                time.sleep(0.05)
        except requests.exceptions.ConnectionError as exc:
            raise EngineUnavailable(f"the Docker engine stopped answering; {ENGINE_HINT}") \
                from exc

    def list_owned(self, all_states: bool = True) -> list[ContainerRecord]:
        with _translated("list sandbox containers"):
            rows = self.api.containers(all=all_states, filters={"label": LABEL_SESSION})
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
        with _translated("run a probe in the sandbox"):
            exec_id = self.api.exec_create(container_id, argv, stdout=True, stderr=True)["Id"]
            output = self.api.exec_start(exec_id)
            code = self.api.exec_inspect(exec_id).get("ExitCode")
        return (code if isinstance(code, int) else -1), bytes(output or b"")

    def versions(self) -> dict[str, str]:
        with _translated("read the engine's version"):
            v = self.api.version()
            info = self.api.info()
        return {
            "engine": str(v.get("Version", "?")),
            "api": str(v.get("ApiVersion", "?")),
            "cgroup": str(info.get("CgroupVersion", "?")),
            "runtime": str(info.get("DefaultRuntime", "?")),
            "security": ", ".join(str(s).split(",")[0] for s in info.get("SecurityOptions") or []),
            "kernel": str(info.get("KernelVersion", "?")),
        }
