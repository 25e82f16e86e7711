"""The engine itself, on whichever engine the run points at (tests/engine_matrix.py): it is
recognised, the runtime is checked, a sandbox starts without an attach, remote TLS trusts
only its own CA, and errors name the engine and the cause."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator

import pytest

from sandbox_kernel.errors import ConfigError
from sandbox_kernel.sandbox.backend import LABEL_SESSION
from sandbox_kernel.sandbox.docker_backend import DockerBackend
from sandbox_kernel.sandbox.image import default_image
from sandbox_kernel.sandbox.reaper import Owner, owner_labels
from sandbox_kernel.sandbox.spec import ContainerSpec, Limits

pytestmark = pytest.mark.docker

ENGINE = os.environ.get("SANDBOX_TEST_ENGINE", "main")
RUNTIME = os.environ.get("SANDBOX_RUNTIME") or None


@pytest.fixture
def backend() -> Iterator[DockerBackend]:
    b = DockerBackend()
    yield b
    b.client.close()


def test_the_engine_is_recognised(backend: DockerBackend) -> None:
    v = backend.versions()
    assert v["name"] == ("Podman" if ENGINE == "podman" else "Docker")
    assert v["engine"] != "?" and v["cgroup"] in ("1", "2")
    where = os.environ.get("DOCKER_CONTEXT") or os.environ.get("DOCKER_HOST") or "default"
    assert where in v["address"]
    traits = backend.check_runtime(RUNTIME)
    assert traits.kind == ("gvisor" if RUNTIME == "runsc" else "runc")


def test_an_unregistered_runtime_is_refused_in_one_sentence(backend: DockerBackend) -> None:
    with pytest.raises(ConfigError, match=r"no runtime 'no-such-runtime' registered"):
        backend.create(ContainerSpec(image=default_image(), name="x", limits=Limits(),
                                     runtime="no-such-runtime"))


def test_a_sandbox_starts_and_answers_a_probe_without_an_attach(backend: DockerBackend) -> None:
    sid = secrets.token_hex(6)
    owner = Owner.current()
    spec = ContainerSpec(image=default_image(), name=owner.container_name(sid), limits=Limits(),
                         labels={**owner_labels(owner), LABEL_SESSION: sid},
                         env={"SANDBOX": "1"}, runtime=RUNTIME)
    cid = backend.create(spec, started=True)
    try:
        code, out = backend.exec_in(cid, ["id", "-u"])
        assert (code, out) == (0, b"999\n")  # probes run as the agent, out of cells' reach
        assert backend.state(cid).running
    finally:
        backend.remove(cid)
    assert not backend.state(cid).exists


@pytest.mark.skipif(ENGINE != "alt-tls", reason="only the TLS engine has a CA of its own")
def test_tls_trusts_the_engines_ca_whatever_the_environment(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt")
    monkeypatch.setenv("CURL_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt")
    b = DockerBackend()
    try:
        assert b.versions()["address"].startswith("tcp://127.0.0.1:")
        b.check(default_image())
    finally:
        b.client.close()
