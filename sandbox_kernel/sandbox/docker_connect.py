"""Finding and connecting to the engine as the docker CLI does, and naming what went wrong.

The endpoint is, in the CLI's order: DOCKER_CONTEXT, DOCKER_HOST (with DOCKER_TLS_VERIFY
and DOCKER_CERT_PATH), the config's current context, the default socket. TLS trusts the
engine's CA only, never a bundle named by the environment, and no proxy is ever used: an
engine is a socket or an explicit address. Errors name their innermost cause.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket
import ssl
import struct
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from ..errors import EngineUnavailable, ImageMissing, SandboxError, SessionGone
from .docker_api import EngineClient, TLSFiles
from .docker_errors import (
    APIError,
    EngineConnectionError,
    EngineError,
    EngineTimeout,
    ImageNotFound,
    NotFound,
)
from .image import build_hint

DEFAULT_SOCKET = "unix:///var/run/docker.sock"
ENGINE_HINT = (
    "start one (e.g. 'sudo systemctl start docker', or 'make engine' in a sandbox-kernel "
    "checkout) or point DOCKER_HOST at one"
)
CONNECTION_ERRORS = (EngineConnectionError,)


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
    tls: TLSFiles | None = None

    def describe(self) -> str:
        return f"{self.url} ({self.source})"


def resolve_endpoint(environ: Mapping[str, str] | None = None) -> Endpoint:
    """The engine the docker CLI would use with this environment."""
    env = dict(os.environ if environ is None else environ)
    config = Path(env.get("DOCKER_CONFIG") or os.environ.get("DOCKER_CONFIG")
                  or Path.home() / ".docker")
    context = env.get("DOCKER_CONTEXT", "")
    if context and context != "default":
        return _from_context(config, context)
    if env.get("DOCKER_HOST"):
        return Endpoint(env["DOCKER_HOST"], "DOCKER_HOST", _tls_from_env(env))
    current = _current_context(config)
    if current and current != "default":
        return _from_context(config, current)
    return Endpoint(DEFAULT_SOCKET, "default socket", _tls_from_env(env))


def _tls_from_env(env: Mapping[str, str]) -> TLSFiles | None:
    """DOCKER_TLS_VERIFY and DOCKER_CERT_PATH as the CLI reads them (an empty
    DOCKER_TLS_VERIFY means no verification)."""
    cert_path = env.get("DOCKER_CERT_PATH") or ""
    verify = env.get("DOCKER_TLS_VERIFY")
    if not cert_path and not verify:
        return None
    certs = Path(cert_path or Path.home() / ".docker")
    return TLSFiles(str(certs / "ca.pem"), (str(certs / "cert.pem"), str(certs / "key.pem")),
                    verify=bool(verify))


def _current_context(config: Path) -> str:
    try:
        return str(json.loads((config / "config.json").read_text()).get("currentContext") or "")
    except (OSError, ValueError, AttributeError):
        return ""


def _from_context(config: Path, name: str) -> Endpoint:
    """A context from the CLI's store (contexts/meta and contexts/tls, by name's sha256)."""
    digest = hashlib.sha256(name.encode()).hexdigest()
    try:
        meta = json.loads((config / "contexts" / "meta" / digest / "meta.json").read_text())
        docker_ep = (meta.get("Endpoints") or {}).get("docker") or {}
    except FileNotFoundError:
        docker_ep = {}
    except (OSError, ValueError, AttributeError) as exc:
        raise EngineError(f"Docker context {name!r}: unreadable ({cause_of(exc)})") from exc
    if not docker_ep.get("Host"):
        raise EngineError(f"Docker context {name!r} does not exist or has no Docker endpoint")
    tls_dir = config / "contexts" / "tls" / digest / "docker"
    ca, cert, key = (tls_dir / f for f in ("ca.pem", "cert.pem", "key.pem"))
    tls = None
    if ca.is_file() or cert.is_file():
        tls = TLSFiles(str(ca) if ca.is_file() else None,
                       (str(cert), str(key)) if cert.is_file() and key.is_file() else None,
                       verify=not docker_ep.get("SkipTLSVerify"))
    return Endpoint(str(docker_ep["Host"]), f"context {name}", tls)


def connect(endpoint: Endpoint, timeout: float) -> EngineClient:
    """A client for the endpoint (it asks the engine its API version at once)."""
    try:
        return EngineClient(endpoint.url, endpoint.tls, timeout)
    except OSError as exc:  # unreadable TLS files (ssl.SSLError is one)
        raise EngineError(f"cannot use the TLS files: {cause_of(exc)}") from exc


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
    """An exception and everything beneath it: causes, contexts, reasons, args."""
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
    """Turn the engine client's errors into one-sentence SandboxErrors."""
    at = f" at {where}" if where else ""
    try:
        yield
    except SandboxError:
        raise
    except ImageNotFound as exc:
        raise ImageMissing(
            f"cannot {what}: the image is missing ({explain(exc)}); "
            + (build_hint(image) if image else "build it with 'sandbox-kernel build-image'")
        ) from exc
    except NotFound as exc:
        raise SessionGone(f"cannot {what}: the container no longer exists") from exc
    except APIError as exc:
        text = explain(exc)
        if "is paused" in text:
            raise SessionGone(f"cannot {what}: the container was paused from outside") from exc
        if "is not running" in text or "is restarting" in text:
            raise SessionGone(f"cannot {what}: the container is not running") from exc
        raise SandboxError(f"the engine refused to {what}: {text}") from exc
    except EngineTimeout as exc:
        raise EngineUnavailable(f"the engine{at} did not answer in time ({what})") from exc
    except EngineConnectionError as exc:
        raise EngineUnavailable(f"the engine{at} stopped answering ({cause_of(exc)}); "
                                f"{engine_hint()}") from exc
    except EngineError as exc:
        raise SandboxError(f"cannot {what}: {cause_of(exc)}") from exc
