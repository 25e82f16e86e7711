"""The CPU count cell code sees (agent/cpus.py): the quota, read from cgroup files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sandbox_kernel.agent import cpus


def cgroup(tmp_path: Path, files: dict[str, str]) -> str:
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text + "\n")
    return str(tmp_path)


@pytest.mark.parametrize(("files", "expected"), [
    ({"cpu.max": "150000 100000"}, 1.5),
    ({"cpu.max": "max 100000"}, None),
    ({"cpu/cpu.cfs_quota_us": "50000", "cpu/cpu.cfs_period_us": "100000"}, 0.5),
    ({"cpu/cpu.cfs_quota_us": "-1", "cpu/cpu.cfs_period_us": "100000"}, None),
])
def test_quota_from_either_cgroup_version(tmp_path: Path, files: dict[str, str],
                                          expected: float | None) -> None:
    assert cpus.quota(cgroup(tmp_path, files)) == expected


def test_without_cgroup_files_the_agent_s_variable_counts(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(cpus.LIMIT_ENV, "2.5")
    assert cpus.quota(str(tmp_path)) == 2.5
    monkeypatch.setenv(cpus.LIMIT_ENV, "lots")
    assert cpus.quota(str(tmp_path)) is None


def test_count_rounds_up_and_never_exceeds_the_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    cores = len(os.sched_getaffinity(0))
    for limit, expected in ((0.2, 1), (1.0, 1), (1.5, min(2, cores)), (64.0, cores),
                            (None, cores)):
        monkeypatch.setattr(cpus, "quota", lambda limit=limit: limit)
        assert cpus.count() == expected
    assert cpus.thread_env(1.5)["OPENBLAS_NUM_THREADS"] == "2"
    assert set(cpus.thread_env(0.5).values()) == {"1"}


def test_install_makes_os_cpu_count_the_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "cpu_count", os.cpu_count)  # restored after the test
    monkeypatch.setattr(cpus, "quota", lambda: 1.0)
    cpus.install()
    cpus.install()  # idempotent: wraps the host's function once
    import multiprocessing
    assert os.cpu_count() == 1 == multiprocessing.cpu_count()
    monkeypatch.setattr(cpus, "quota", lambda: None)
    assert os.cpu_count() == len(os.sched_getaffinity(0))
