"""Finding the engine as the docker CLI does, TLS trust from the endpoint only, and errors
that name their cause (docker_connect.py). Nothing here needs a running engine."""

from __future__ import annotations

import gc
import hashlib
import json
import ssl
import subprocess
from pathlib import Path

import pytest

from sandbox_kernel.errors import EngineUnavailable
from sandbox_kernel.sandbox.docker_api import TLSFiles
from sandbox_kernel.sandbox.docker_backend import DockerBackend
from sandbox_kernel.sandbox.docker_connect import (
    DEFAULT_SOCKET,
    Endpoint,
    cause_of,
    resolve_endpoint,
)
from sandbox_kernel.sandbox.docker_errors import EngineConnectionError


@pytest.fixture
def docker_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty docker CLI config dir (DOCKER_CONFIG), so the user's own is never read."""
    (tmp_path / "config.json").write_text("{}")
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    return tmp_path


def add_context(config: Path, name: str, host: str, tls_dir: Path | None = None) -> None:
    cid = hashlib.sha256(name.encode()).hexdigest()
    meta = config / "contexts" / "meta" / cid
    meta.mkdir(parents=True)
    meta.joinpath("meta.json").write_text(json.dumps({
        "Name": name, "Metadata": {},
        "Endpoints": {"docker": {"Host": host, "SkipTLSVerify": False}}}))
    if tls_dir is not None:
        tls = config / "contexts" / "tls" / cid / "docker"
        tls.mkdir(parents=True)
        for f in ("ca.pem", "cert.pem", "key.pem"):
            tls.joinpath(f).write_text((tls_dir / f).read_text())


def test_default_socket(docker_config: Path) -> None:
    ep = resolve_endpoint({})
    assert (ep.url, ep.source, ep.tls) == (DEFAULT_SOCKET, "default socket", None)


def test_docker_host_with_tls_variables(docker_config: Path, tmp_path: Path) -> None:
    for f in ("ca.pem", "cert.pem", "key.pem"):
        (tmp_path / f).write_text("x")
    ep = resolve_endpoint({"DOCKER_HOST": "tcp://127.0.0.1:2376", "DOCKER_TLS_VERIFY": "1",
                           "DOCKER_CERT_PATH": str(tmp_path)})
    assert (ep.url, ep.source) == ("tcp://127.0.0.1:2376", "DOCKER_HOST")
    assert ep.tls is not None and ep.tls.verify and ep.tls.ca_cert == str(tmp_path / "ca.pem")
    assert ep.describe() == "tcp://127.0.0.1:2376 (DOCKER_HOST)"


def test_current_context_and_docker_context_win_as_in_the_cli(docker_config: Path,
                                                              tmp_path: Path) -> None:
    certs = tmp_path / "certs"
    certs.mkdir()
    for f in ("ca.pem", "cert.pem", "key.pem"):
        (certs / f).write_text("x")
    add_context(docker_config, "remote", "tcp://127.0.0.1:23760", certs)
    add_context(docker_config, "other", "unix:///run/other.sock")
    (docker_config / "config.json").write_text(json.dumps({"currentContext": "remote"}))
    ep = resolve_endpoint({})
    assert (ep.url, ep.source) == ("tcp://127.0.0.1:23760", "context remote")
    assert ep.tls is not None and ep.tls.ca_cert.endswith("ca.pem")
    # DOCKER_HOST beats the config's current context; DOCKER_CONTEXT beats DOCKER_HOST
    assert resolve_endpoint({"DOCKER_HOST": "unix:///x.sock"}).source == "DOCKER_HOST"
    ep = resolve_endpoint({"DOCKER_HOST": "unix:///x.sock", "DOCKER_CONTEXT": "other"})
    assert (ep.url, ep.source) == ("unix:///run/other.sock", "context other")


def test_a_missing_context_names_itself(docker_config: Path) -> None:
    with pytest.raises(Exception, match="'nowhere'"):
        resolve_endpoint({"DOCKER_CONTEXT": "nowhere"})


def test_tls_trusts_the_engines_ca_only(tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Neither the system's bundle nor one the environment names is trusted beside the
    engine's CA (requests merged REQUESTS_CA_BUNDLE over it: docker/docker-py#2433)."""
    ca = tmp_path / "ca.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", str(tmp_path / "k"),
                    "-out", str(ca), "-subj", "/CN=engine-ca", "-days", "1"],
                   check=True, capture_output=True)
    for var in ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.setenv(var, "/etc/ssl/certs/ca-certificates.crt")
    ctx = TLSFiles(str(ca)).context()
    assert [c["subject"] for c in ctx.get_ca_certs()] == [((("commonName", "engine-ca"),),)]
    assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname
    loose = TLSFiles(None, verify=False).context()
    assert loose.verify_mode == ssl.CERT_NONE and not loose.get_ca_certs()


def test_no_engine_message_names_the_address_and_the_cause(
        monkeypatch: pytest.MonkeyPatch, docker_config: Path) -> None:
    monkeypatch.setenv("DOCKER_HOST", "tcp://127.0.0.1:9")
    with pytest.raises(EngineUnavailable) as err:
        DockerBackend(timeout=5).client  # noqa: B018 - the property connects
    assert "tcp://127.0.0.1:9 (DOCKER_HOST): connection refused" in str(err.value)
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    with pytest.raises(EngineUnavailable, match=r"nonexistent/docker.sock \(DOCKER_HOST\): "
                                                r"no such file or directory"):
        DockerBackend(timeout=5).client  # noqa: B018
    gc.collect()


def test_cause_of_digs_to_the_innermost_reason() -> None:
    inner = ConnectionRefusedError(111, "Connection refused")
    try:
        try:
            raise inner
        except OSError as exc:
            raise EngineConnectionError(str(exc)) from exc
    except EngineConnectionError as outer:
        assert cause_of(outer) == "connection refused"
    assert cause_of(RuntimeError("plain words")) == "plain words"


def test_endpoint_describe() -> None:
    assert Endpoint("unix:///s", "context x").describe() == "unix:///s (context x)"
