"""Choosing the backend: the one module above the Docker backend that names it.

A Kubernetes backend (docs/engines.md) would be added here and nowhere else above the
backend interface.
"""

from __future__ import annotations

from .backend import Backend


def make_backend(*, allow_unenforced_limits: bool = False, timeout: float = 60.0,
                 direct_link: bool = True) -> Backend:
    """The Docker-API backend for the engine the docker CLI would use (DOCKER_HOST, context).

    `allow_unenforced_limits` accepts an engine where limits cannot hold (rootless Podman on
    cgroup v1), which is otherwise refused with one sentence. `direct_link`: offer agents
    the direct link (sandbox/direct.py) where the engine runs on this machine.
    """
    from .docker_backend import DockerBackend

    return DockerBackend(timeout=timeout, allow_unenforced_limits=allow_unenforced_limits,
                         direct=direct_link)
