"""Engine facts and per-engine container options, from recorded `info`/`version` answers.

tests/unit/engine_info.json holds answers recorded from Docker 20.10 (runc and runsc) and
rootful Podman 4.3 on this project's test machine, and variants derived from them (each
says how) for engines that cannot run here: rootless Podman on cgroup v1 and v2, rootless
Docker.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from sandbox_kernel.errors import ConfigError, EngineUnavailable
from sandbox_kernel.sandbox import docker_options as opts
from sandbox_kernel.sandbox.backend import RuntimeTraits
from sandbox_kernel.sandbox.engine_facts import EngineFacts, runtime_kind
from sandbox_kernel.sandbox.spec import ContainerSpec, Limits

RECORDED: dict[str, Any] = json.loads(
    (Path(__file__).parent / "engine_info.json").read_text(encoding="utf-8"))


def facts(name: str) -> EngineFacts:
    return EngineFacts.from_api(RECORDED[name]["info"], RECORDED[name]["version"])


def spec(**kwargs: Any) -> ContainerSpec:
    return ContainerSpec(image="img", name="n", limits=Limits(), **kwargs)


# ----- facts --------------------------------------------------------------------------------
def test_docker_is_recognised_with_its_runtimes() -> None:
    f = facts("docker-20.10-runc-runsc")
    assert (f.kind, f.name, f.cgroup_version, f.rootless, f.seccomp) == \
        ("docker", "Docker", "1", False, True)
    assert f.version.startswith("20.10")
    assert f.runtime("runsc").traits.kind == "gvisor"
    assert f.runtime(None).name == "runc" and f.runtime(None).traits == RuntimeTraits()
    assert "--network=none" in f.runtime("runsc").args
    assert f.limits_refusal() is None


def test_podman_names_itself_in_version_components() -> None:
    f = facts("podman-4.3-rootful")
    assert (f.kind, f.name, f.rootless) == ("podman", "Podman", False)
    assert "Podman engine 4.3.1" in f.describe()
    assert f.limits_refusal() is None


def test_rootless_podman_on_cgroup_v1_is_refused_in_one_sentence() -> None:
    f = facts("podman-4.3-rootless-cgroupv1")
    assert (f.kind, f.rootless, f.cgroup_version) == ("podman", True, "1")
    reason = f.limits_refusal()
    assert reason is not None and "rootless Podman on cgroup v1 cannot enforce" in reason
    assert "allow_unenforced_limits" in reason and reason.count(". ") == 0
    with pytest.raises(EngineUnavailable, match="cannot enforce memory, CPU or process"):
        f.check()
    f.check(allow_unenforced=True)  # the explicit override


@pytest.mark.parametrize("name", ["podman-4.3-rootless-cgroupv2",
                                  "docker-20.10-rootless-cgroupv2"])
def test_rootless_on_cgroup_v2_is_accepted(name: str) -> None:
    f = facts(name)
    assert f.rootless and f.cgroup_version == "2"
    assert f.limits_refusal() is None


def test_an_unregistered_runtime_is_a_config_error_naming_the_known_ones() -> None:
    f = facts("docker-20.10-runc-runsc")
    with pytest.raises(ConfigError, match=r"no runtime 'kata' registered .*runc, runsc"):
        f.runtime("kata")


def test_podman_reports_oci_for_its_default_runtime() -> None:
    assert facts("podman-4.3-rootful").traits_of("oci").kind == "runc"


@pytest.mark.parametrize(("path", "kind"), [("/usr/bin/runsc", "gvisor"), ("runc", "runc"),
                                            ("/usr/bin/crun", "crun"), ("runsc-kvm", "gvisor"),
                                            ("/usr/bin/kata-runtime", "kata"), ("", "other")])
def test_runtime_kind(path: str, kind: str) -> None:
    assert runtime_kind(path) == kind


def test_empty_answers_give_docker_defaults() -> None:
    f = EngineFacts.from_api({}, {})
    assert (f.kind, f.default_runtime, f.cgroup_version, f.rootless) == \
        ("docker", "runc", "1", False)


# ----- options ------------------------------------------------------------------------------
def test_docker_options_keep_the_inode_bound_and_owner() -> None:
    hc = opts.host_config(spec(), facts("docker-20.10-runc-runsc"), RuntimeTraits(), "seccomp=x")
    sandbox = hc["Tmpfs"]["/sandbox"].split(",")
    assert {"noexec", "nosuid", "nodev", "uid=1000", "gid=1000", "mode=0700"} <= set(sandbox)
    assert any(o.startswith("nr_inodes=") for o in sandbox)
    assert hc["SecurityOpt"] == ["no-new-privileges:true", "seccomp=x"]
    assert [u["Name"] for u in hc["Ulimits"]] == ["core", "fsize", "nofile"]
    assert hc["PidsLimit"] == 20 and "Runtime" not in hc
    assert hc["CapDrop"] == ["ALL"] and hc["ReadonlyRootfs"] and hc["Init"]


def test_podman_options_use_what_podman_accepts() -> None:
    hc = opts.host_config(spec(), facts("podman-4.3-rootful"), RuntimeTraits(), "seccomp=/p",
                          nproc_ceiling=32768)
    for path, tmpfs in hc["Tmpfs"].items():
        assert "nr_inodes" not in tmpfs and "uid=" not in tmpfs and "gid=" not in tmpfs
        # the live-install tmpfs is exec (compiled extensions), never suid or devices
        exec_ = "exec" if path == opts.PACKAGES_DIR else "noexec"
        assert {exec_, "nosuid", "nodev"} <= set(tmpfs.split(","))
    assert {"U", "mode=0700"} <= set(hc["Tmpfs"]["/sandbox"].split(","))
    ulimits = {u["Name"]: (u["Soft"], u["Hard"]) for u in hc["Ulimits"]}
    assert ulimits["nproc"] == (32768, 32768)  # sent, so Podman does not add 1048576
    assert ulimits["nofile"] == (1024, 1024)


def test_podman_takes_the_seccomp_profile_by_path_docker_inline() -> None:
    assert opts.seccomp_option(facts("podman-4.3-rootful"), "{}", "/p.json") == "seccomp=/p.json"
    assert opts.seccomp_option(facts("docker-20.10-runc-runsc"), "{}", "/p.json") == "seccomp={}"


def test_gvisor_enforces_pids_inside_and_gives_the_host_cgroup_headroom() -> None:
    f = facts("docker-20.10-runc-runsc")
    traits = f.runtime("runsc").traits
    hc = opts.host_config(spec(runtime="runsc"), f, traits, None)
    assert hc["Runtime"] == "runsc"
    ulimits = {u["Name"]: u["Hard"] for u in hc["Ulimits"]}
    assert ulimits["nproc"] == 20
    assert hc["PidsLimit"] == 20 * traits.pids_factor + traits.pids_overhead > 200
    assert hc["SecurityOpt"] == ["no-new-privileges:true"]
    assert not traits.live_update and not traits.cgroup_files


def test_update_bodies() -> None:
    lim = Limits(memory=256 * 2**20, cpus=0.5, pids=30)
    assert opts.update_body(lim, RuntimeTraits()) == {
        "Memory": lim.memory, "MemorySwap": lim.memory, "NanoCpus": 500_000_000,
        "PidsLimit": 30}
    assert opts.libpod_update_body(lim, RuntimeTraits()) == {
        "memory": {"limit": lim.memory, "swap": lim.memory},
        "cpu": {"quota": 50_000, "period": 100_000}, "pids": {"limit": 30}}
