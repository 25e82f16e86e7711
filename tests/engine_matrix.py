"""The engine matrix: which tests run on each second engine, and what is known not to work.

``pytest --engine NAME`` (or SANDBOX_TEST_ENGINE=NAME) points the whole run at an engine
started by docker/engines/engines.sh: its environment (DOCKER_HOST or DOCKER_CONTEXT,
SANDBOX_RUNTIME...) is set before any test, so docker-py, the docker CLI and every kernel
process the tests start follow it. ``main`` (the default) changes nothing.

EXPECTED records, per engine, the tests that fail with the current agent and why, as strict
xfails (an unexpected pass fails the run, so the table is kept honest) or, where the
failure is a hang, as skips. docker/engines/matrix.sh runs SUBSET on every engine.
Measured with the protocol-3 agent.
"""

from __future__ import annotations

import os
import shlex
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ENGINES_SH = ROOT / "docker" / "engines" / "engines.sh"
ENGINES = ("alt-runc", "alt-runsc", "alt-tls", "alt-tls-env", "podman")

#: What runs on every engine of the matrix: the Docker and kernel suites' core.
SUBSET = (
    "tests/docker/test_engine.py",
    "tests/docker/test_hardening.py",
    "tests/docker/test_session_basics.py::test_command_stdout_stderr_exit_code",
    "tests/docker/test_session_basics.py::test_write_read_roundtrip_text_and_binary",
    "tests/docker/test_session_basics.py::test_health_fields",
    "tests/docker/test_session_basics.py::test_run_keeps_state_and_returns_result",
    "tests/docker/test_limits_bite.py::test_cell_memory_bomb",
    "tests/docker/test_limits_bite.py::test_python_fork_bomb_hits_pids_limit",
    "tests/docker/test_limits_bite.py::test_cell_timeout_keeps_state",
    "tests/docker/test_limits_bite.py::test_update_limits_live",
    "tests/security/test_syscalls.py",
    "tests/security/test_direct_link.py::"
    "test_sessions_take_the_direct_link_unless_it_is_off_or_out_of_reach",
    "tests/kernel/test_execution.py::test_stdout_streams_line_by_line_while_the_cell_runs",
    "tests/kernel/test_execution.py::test_matplotlib_figure_is_an_inline_png",
    "tests/kernel/test_execution.py::test_pandas_table_still_renders",
    "tests/kernel/test_execution.py::test_interrupt_raises_keyboardinterrupt_and_keeps_state",
    "tests/kernel/test_execution.py::test_wall_timeout_stops_the_cell_and_keeps_state",
    "tests/kernel/test_execution.py::test_oom_is_reported_and_the_sandbox_recovers",
    "tests/kernel/test_magics.py::test_status_and_health",
    "tests/kernel/test_magics.py::test_limits_apply_live_without_losing_state",
    "tests/kernel/test_magics.py::test_upload_download_round_trip_of_a_binary_file",
    "tests/kernel/test_magics.py::test_node_console_streams_and_last_expression",
)

_GVISOR = "gVisor shows it differently, the hardening holds: "
#: engine -> {test id or file (path[::name], parameters ignored): (how, why)}; how is
#: "xfail" (strict) or "skip" (for hangs).
EXPECTED: dict[str, dict[str, tuple[str, str]]] = {
    "alt-runsc": {
        "tests/docker/test_hardening.py::test_no_capabilities_no_new_privs_seccomp": (
            "xfail", _GVISOR + "its /proc/PID/status has no NoNewPrivs line and Seccomp 0 "
                     "(the Sentry filters; the OCI profile stays off, docs/engines.md)"),
        "tests/docker/test_hardening.py::test_root_filesystem_is_read_only": (
            "xfail", _GVISOR + "writing / fails with EACCES before EROFS"),
        "tests/docker/test_hardening.py::test_only_loopback": (
            "xfail", _GVISOR + "runsc --network=none lists no interface in /sys/class/net"),
        "tests/docker/test_hardening.py::test_no_egress": (
            "xfail", _GVISOR + "connect() fails with EHOSTUNREACH, not ENETUNREACH"),
        "tests/docker/test_hardening.py::test_host_environment_does_not_leak": (
            "xfail", "gVisor lets uid 1000 read /proc/1/environ (docker-init's); it holds "
                     "only what the engine's inspect shows, which the test checks for leaks"),
        "tests/docker/test_limits_bite.py::test_update_limits_live": (
            "xfail", "runsc cannot change limits live (LiveLimitsUnsupported), and the test "
                     "reads cgroup files"),
        "tests/kernel/test_magics.py::test_limits_apply_live_without_losing_state": (
            "xfail", "runsc cannot change limits live: %sandbox limits refuses it in one "
                     "sentence (LiveLimitsUnsupported) instead of applying it"),
    },
    "podman": {
        "tests/kernel/test_magics.py::test_limits_apply_live_without_losing_state": (
            "xfail", "Podman 4.3's inspect keeps the creation-time limits after a libpod "
                     "update; the cgroup inside has the new ones (checked before)"),
    },
}


def engine_env(name: str) -> dict[str, str]:
    """The variables engines.sh gives for an engine (it must be started)."""
    out = subprocess.run(["bash", str(ENGINES_SH), "env", name], capture_output=True,
                         text=True, timeout=30, check=False)
    if out.returncode != 0:
        raise pytest.UsageError(f"--engine {name}: {out.stderr.strip() or 'engines.sh failed'}"
                                "; start the engines with 'docker/engines/engines.sh start'")
    env = {}
    for word in shlex.split(out.stdout):
        key, _, value = word.partition("=")
        env[key] = value
    return env


def addoption(parser: pytest.Parser) -> None:
    parser.addoption("--engine", default=os.environ.get("SANDBOX_TEST_ENGINE", "main"),
                     choices=("main", *ENGINES),
                     help="run against a second engine from docker/engines/engines.sh")


def configure(config: pytest.Config) -> None:
    name = config.getoption("--engine")
    if name == "main":
        return
    for key in ("DOCKER_HOST", "DOCKER_CONTEXT", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH",
                "DOCKER_CONFIG", "SANDBOX_RUNTIME"):
        os.environ.pop(key, None)
    os.environ.update(engine_env(name))
    os.environ["SANDBOX_TEST_ENGINE"] = name


def apply_expectations(config: pytest.Config, items: list[pytest.Item]) -> None:
    known = EXPECTED.get(config.getoption("--engine"), {})
    for item in items:
        test_id = item.nodeid.split("[", 1)[0]
        key = test_id if test_id in known else test_id.split("::", 1)[0]
        if key not in known:
            continue
        how, why = known[key]
        if how == "skip":
            item.add_marker(pytest.mark.skip(reason=why))
        else:
            item.add_marker(pytest.mark.xfail(reason=why, strict=True))


def header(config: pytest.Config) -> str:
    name = config.getoption("--engine")
    where = os.environ.get("DOCKER_CONTEXT") or os.environ.get("DOCKER_HOST") or "default"
    runtime = os.environ.get("SANDBOX_RUNTIME") or "default"
    return f"sandbox engine: {name} ({where}, runtime {runtime})"
