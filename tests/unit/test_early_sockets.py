"""The kernel binds its channels before its imports, and the app takes those sockets over.

A client connecting early (as every kernel manager does) has its requests queued instead
of waiting for ZMQ's next 100 ms reconnect (kernel/early_sockets.py). No engine is used:
the kernel under test has a fatal setting, so it never starts a sandbox.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import zmq
from jupyter_client.blocking import BlockingKernelClient
from jupyter_client.connect import write_connection_file

from sandbox_kernel.kernel.early_sockets import bind_early, connection_file


@pytest.fixture
def conn(tmp_path: Path) -> str:
    path, _ = write_connection_file(str(tmp_path / "kernel.json"))
    return str(path)


def info_of(path: str) -> dict[str, Any]:
    return dict(json.loads(Path(path).read_text()))


def accepts(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_the_connection_file_argument_is_found() -> None:
    assert connection_file(["-f", "a.json", "--debug"]) == "a.json"
    assert connection_file(["--f=b.json"]) == "b.json"
    assert connection_file(["-f=c.json"]) == "c.json"
    assert connection_file(["--debug"]) is None
    assert connection_file(["-f"]) is None


def test_channels_are_bound_by_name_on_their_ports(conn: str) -> None:
    early = bind_early(["-f", conn])
    assert early is not None
    info = early.info
    try:
        for name in ("shell", "stdin", "control", "iopub"):
            assert accepts(info[f"{name}_port"]), name
            assert early.sockets[name].getsockopt_string(zmq.LAST_ENDPOINT).endswith(
                f":{info[f'{name}_port']}")
        assert not accepts(info["hb_port"])  # the heartbeat binds with the app
    finally:
        early.close()
        early.context.term()


@pytest.mark.parametrize("change", [{"transport": "ipc"}, {"curve_publickey": "x"},
                                    {"shell_port": 0}, {"shell_port": "nonsense"}])
def test_what_cannot_be_bound_plainly_is_left_to_the_app(
        conn: str, change: dict[str, Any]) -> None:
    Path(conn).write_text(json.dumps({**info_of(conn), **change}))
    assert bind_early(["-f", conn]) is None


def test_a_taken_port_or_a_missing_file_binds_nothing(conn: str, tmp_path: Path) -> None:
    assert bind_early(["-f", str(tmp_path / "missing.json")]) is None
    assert bind_early([]) is None
    info = info_of(conn)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", info["iopub_port"]))
        taken.listen()
        assert bind_early(["-f", conn]) is None
        assert not accepts(info["shell_port"])  # what was bound before the failure is freed


@pytest.fixture
def early_client(conn: str) -> Iterator[tuple[BlockingKernelClient, subprocess.Popen[str]]]:
    """A client that asks for kernel_info before the kernel process exists, then the kernel."""
    client = BlockingKernelClient(connection_file=conn)
    client.load_connection_file()
    client.start_channels()
    proc = subprocess.Popen(
        [sys.executable, "-m", "sandbox_kernel", "-f", conn, "--Sandbox.memory=lots", "--debug"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        yield client, proc
    finally:
        client.stop_channels()
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=30)


def test_the_kernel_answers_on_the_sockets_it_bound_early(
        early_client: tuple[BlockingKernelClient, subprocess.Popen[str]]) -> None:
    client, proc = early_client
    client.wait_for_ready(timeout=60)
    reply = client.execute_interactive("1", timeout=30, output_hook=lambda m: None)
    assert reply["content"]["status"] == "error"  # the fatal setting, reported by the cell
    assert "memory" in reply["content"]["evalue"]
    client.control_channel.send(client.session.msg("kernel_info_request"))
    assert client.control_channel.get_msg(timeout=10)["msg_type"] == "kernel_info_reply"
    assert proc.poll() is None
    proc.terminate()
    assert "Took over the channels bound before the imports" in proc.communicate(timeout=30)[1]


def test_early_sockets_for_another_file_are_closed_and_the_app_binds_its_own(
        conn: str, tmp_path: Path) -> None:
    """The early sockets stand only for the file they were bound from."""
    import logging

    from sandbox_kernel.kernel.connection import Connection

    early = bind_early(["-f", conn])
    assert early is not None
    other, _ = write_connection_file(str(tmp_path / "other.json"))
    connection = Connection.open(str(other), early, logging.getLogger("test"))
    try:
        assert not accepts(early.info["shell_port"])
        assert accepts(info_of(str(other))["shell_port"])
        assert accepts(info_of(str(other))["hb_port"])
    finally:
        connection.close()


def test_an_ipc_connection_file_binds_each_channel_to_its_own_socket_file(
        tmp_path: Path) -> None:
    """As ipykernel: over ipc, channel `name` with port N listens at the file `{ip}-{N}`."""
    import logging

    from sandbox_kernel.kernel.connection import Connection

    ip = str(tmp_path / "kernel-ipc")
    path = tmp_path / "ipc.json"
    path.write_text(json.dumps({"transport": "ipc", "ip": ip, "key": "k", "shell_port": 7}))
    connection = Connection.open(str(path), None, logging.getLogger("test"))
    try:
        ports = connection.ports
        assert ports["shell_port"] == 7
        assert len(set(ports.values())) == 5
        for port in ports.values():
            assert Path(f"{ip}-{port}").is_socket()
    finally:
        connection.close()


def test_a_transport_neither_tcp_nor_ipc_is_refused_by_name(tmp_path: Path) -> None:
    import logging

    from sandbox_kernel.kernel.connection import Connection

    path = tmp_path / "odd.json"
    path.write_text(json.dumps({"transport": "inproc", "ip": "x", "key": "k"}))
    with pytest.raises(ValueError, match="the transport must be tcp or ipc"):
        Connection.open(str(path), None, logging.getLogger("test"))
