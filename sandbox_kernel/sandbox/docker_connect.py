"""Finding and connecting to the engine as the docker CLI does, and naming what went wrong.

The endpoint is, in the CLI's order: DOCKER_CONTEXT, DOCKER_HOST (with DOCKER_TLS_VERIFY
and DOCKER_CERT_PATH), the config's current context, the default socket. The client's
TLS trusts the engine's CA only: requests would let REQUESTS_CA_BUNDLE or CURL_CA_BUNDLE
replace it (docker/docker-py#2433), so the client ignores the environment (no proxies
either: an engine is a socket or an explicit address). Errors name their innermost cause.
"""

from __future__ import annotations

import contextlib
import os
import socket
import ssl
import struct
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import docker.errors
import requests.exceptions
from docker.context import ContextAPI
from docker.utils import kwargs_from_env

import docker

from ..errors import EngineUnavailable, ImageMissing, SandboxError, SessionGone
from .image import build_hint

DEFAULT_SOCKET = "unix:///var/run/docker.sock"
ENGINE_HINT = (
    "start one (e.g. 'sudo systemctl start docker', or 'make engine' in a sandbox-kernel "
    "checkout) or point DOCKER_HOST at one"
)
CONNECTION_ERRORS = (requests.exceptions.ConnectionError, ConnectionError, FileNotFoundError)


def engine_hint(environ: Mapping[str, str] | None = None) -> str:
    """What to do when no engine answers, echoing DOCKER_HOST as this process sees it."""
    host = (os.environ if environ is None else environ).get("DOCKER_HOST", "")
    return f"{ENGINE_HINT} (DOCKER_HOST is {host[:200]!r} here)" if host else ENGINE_HINT


def explain(exc: BaseException) -> str:
    text = getattr(exc, "explanation", None) or str(exc)
    return " ".join(str(text).split())[:300]


@dataclass(frozen=True)
class Endpoint:
    """Where the engine is, how to reach it, and where that came from (for messages)."""

    url: str
    source: str  # "DOCKER_HOST", "context NAME", "default socket"
    tls: Any = None  # docker.tls.TLSConfig or None

    def describe(self) -> str:
        return f"{self.url} ({self.source})"


def resolve_endpoint(environ: Mapping[str, str] | None = None) -> Endpoint:
    """The engine the docker CLI would use with this environment."""
    env = dict(os.environ if environ is None else environ)
    context = env.get("DOCKER_CONTEXT", "")
    if context and context != "default":
        return _from_context(context)
    if env.get("DOCKER_HOST"):
        kwargs = kwargs_from_env(environment=env)
        tls = kwargs.get("tls") or None
        return Endpoint(str(kwargs["base_url"]), "DOCKER_HOST", tls)
    try:
        current = ContextAPI.get_current_context().Name
    except docker.errors.DockerException:
        current = "default"
    if current and current != "default":
        return _from_context(current)
    kwargs = kwargs_from_env(environment=env)
    return Endpoint(DEFAULT_SOCKET, "default socket", kwargs.get("tls") or None)


def _from_context(name: str) -> Endpoint:
    try:
        ctx = ContextAPI.get_context(name)
    except docker.errors.DockerException as exc:
        raise docker.errors.DockerException(f"Docker context {name!r}: {cause_of(exc)}") \
            from exc
    if ctx is None or not ctx.Host:
        raise docker.errors.DockerException(f"Docker context {name!r} does not exist or has "
                                            "no Docker endpoint")
    return Endpoint(str(ctx.Host), f"context {name}", ctx.TLSConfig or None)


class _APIClient(docker.APIClient):  # type: ignore[misc]
    """docker-py's client, deaf to the environment from its first request on.

    requests merges REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE over the engine's CA while
    `trust_env` is true, and the version check runs inside the constructor.
    """

    @property
    def trust_env(self) -> bool:
        return False

    @trust_env.setter
    def trust_env(self, value: bool) -> None:
        pass


class _Client(docker.DockerClient):  # type: ignore[misc]
    def __init__(self, **kwargs: Any) -> None:
        self.api = _APIClient(**kwargs)


def connect(endpoint: Endpoint, timeout: float) -> Any:
    """A DockerClient for the endpoint whose TLS trust is the endpoint's own CA only."""
    return _Client(base_url=endpoint.url, tls=endpoint.tls or False, timeout=timeout,
                   version="auto")


def local_engine_nproc(endpoint: Endpoint) -> int | None:
    """The RLIMIT_NPROC hard limit of a local engine's process (its socket's peer), if known.

    Containers inherit it, and where root lacks CAP_SYS_RESOURCE no container may ask for
    more, so an explicit `nproc` must not exceed it (Podman needs one, docker_options.py).
    """
    if not endpoint.url.startswith("unix://"):
        return None
    path = endpoint.url[len("unix://"):]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(2)
            s.connect(path)
            creds = s.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        pid = struct.unpack("3i", creds)[0]
        with open(f"/proc/{pid}/limits", encoding="ascii") as f:
            for line in f:
                if line.startswith("Max processes"):
                    hard = line.split()[3]
                    return None if hard == "unlimited" else int(hard)
    except (OSError, ValueError, IndexError):
        return None
    return None


def _chain(exc: BaseException) -> list[BaseException]:
    """An exception and everything beneath it: causes, contexts, urllib3 reasons, args."""
    seen: list[BaseException] = []
    todo = [exc]
    while todo:
        e = todo.pop(0)
        if e in seen or len(seen) > 20:
            continue
        seen.append(e)
        for nxt in (getattr(e, "reason", None), e.__cause__, e.__context__, *e.args):
            if isinstance(nxt, BaseException):
                todo.append(nxt)
    return seen


def cause_of(exc: BaseException) -> str:
    """The innermost meaningful reason in an error chain, in a few words."""
    chain = _chain(exc)
    for e in chain:
        if isinstance(e, ssl.SSLCertVerificationError):
            return f"TLS certificate verification failed ({e.verify_message})"
    for e in chain:
        if isinstance(e, ssl.SSLError):
            return f"TLS error ({e.reason or e})"
    for e in reversed(chain):
        if isinstance(e, OSError) and e.errno is not None:
            where = f" ({e.filename})" if e.filename else ""
            return f"{os.strerror(e.errno).lower()}{where}"
    text = " ".join(str(getattr(exc, "explanation", None) or exc).split())
    return text[:200] or type(exc).__name__


@contextlib.contextmanager
def translated(what: str, where: str = "", image: str = "") -> Iterator[None]:
    """Turn docker-py and connection errors into one-sentence SandboxErrors."""
    at = f" at {where}" if where else ""
    try:
        yield
    except SandboxError:
        raise
    except docker.errors.ImageNotFound as exc:
        raise ImageMissing(
            f"cannot {what}: the image is missing ({explain(exc)}); "
            + (build_hint(image) if image else "build it with 'sandbox-kernel build-image'")
        ) from exc
    except docker.errors.NotFound as exc:
        raise SessionGone(f"cannot {what}: the container no longer exists") from exc
    except docker.errors.APIError as exc:
        text = explain(exc)
        if "is paused" in text:
            raise SessionGone(f"cannot {what}: the container was paused from outside") from exc
        if "is not running" in text or "is restarting" in text:
            raise SessionGone(f"cannot {what}: the container is not running") from exc
        raise SandboxError(f"the engine refused to {what}: {text}") from exc
    except CONNECTION_ERRORS as exc:
        raise EngineUnavailable(f"the engine{at} stopped answering ({cause_of(exc)}); "
                                f"{engine_hint()}") from exc
    except requests.exceptions.ReadTimeout as exc:
        raise EngineUnavailable(f"the engine{at} did not answer in time ({what})") from exc
    except docker.errors.DockerException as exc:
        raise SandboxError(f"cannot {what}: {cause_of(exc)}") from exc
