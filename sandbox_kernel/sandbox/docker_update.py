"""Live limit changes on Docker and Podman (their update endpoints differ; docs/engines.md)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import LiveLimitsUnsupported, SessionGone
from . import docker_options
from .docker_connect import explain, translated
from .docker_errors import NotFound
from .spec import Limits

if TYPE_CHECKING:
    from .docker_backend import DockerBackend


def update_limits(backend: DockerBackend, container_id: str, limits: Limits) -> None:
    """Apply `limits` to a running container through the engine's update endpoint."""
    with translated("inspect the sandbox", backend.where):
        runtime = (backend.api.inspect_container(container_id).get("HostConfig") or {}).get(
            "Runtime")
    facts = backend.facts
    traits = facts.traits_of(runtime or None)
    if not traits.live_update:
        raise LiveLimitsUnsupported(
            f"the {traits.kind} runtime cannot change a running sandbox's memory, CPU or "
            "process limits; restart the sandbox with the new limits")
    # Podman's compat API has no update endpoint (404); its libpod one works.
    podman = facts.kind == "podman"
    path = (f"/v4.0.0/libpod/containers/{container_id}/update" if podman
            else f"/containers/{container_id}/update")
    body = (docker_options.libpod_update_body if podman else docker_options.update_body)(
        limits, traits)
    try:
        with translated("change the sandbox's limits", backend.where):
            backend.api.request("POST", path, body=body, versioned=not podman)
    except SessionGone as exc:
        if isinstance(exc.__cause__, NotFound) and \
                backend.state(container_id).exists:
            raise LiveLimitsUnsupported(
                f"the {facts.name} engine at {backend.where} cannot change a running "
                f"sandbox's limits (its update endpoint answered: "
                f"{explain(exc.__cause__)})") from exc
        raise
