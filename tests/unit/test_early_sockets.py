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


def test_channels_are_bound_and_handed_out_by_type_in_order(conn: str) -> None:
    early = bind_early(["-f", conn])
    assert early is not None
    context, info = early
    shell, stdin = context.socket(zmq.ROUTER), context.socket(zmq.ROUTER)
    fresh = context.socket(zmq.DEALER)
    try:
        for name in ("shell", "stdin", "control", "iopub"):
            assert accepts(info[f"{name}_port"]), name
        assert not accepts(info["hb_port"])  # the heartbeat binds as ipykernel does
        assert context.bound_port(shell) == info["shell_port"]
        assert context.bound_port(stdin) == info["stdin_port"]
        assert context.bound_port(fresh) is None
        context.release(info["control_port"])
        assert not accepts(info["control_port"])  # release waits until the port is free
    finally:
        for s in (shell, stdin, fresh):
            s.close(linger=0)
        context.close_waiting()
        context.term()


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


def test_a_socket_asked_for_another_port_is_moved_there(conn: str) -> None:
    """Were ipykernel to make its channels in another order, each still ends on its port."""
    from sandbox_kernel.kernel.app import SandboxKernelApp

    early = bind_early(["-f", conn])
    assert early is not None
    context, info = early
    app = SandboxKernelApp(ip="127.0.0.1", transport="tcp")
    app.context = context
    shell = context.socket(zmq.ROUTER)  # bound at the shell port; asked for stdin's
    try:
        assert app._bind_socket(shell, info["stdin_port"]) == info["stdin_port"]
        assert shell.getsockopt_string(zmq.LAST_ENDPOINT).endswith(f":{info['stdin_port']}")
        assert [s.getsockopt_string(zmq.LAST_ENDPOINT) for s in context.waiting] == [
            f"tcp://127.0.0.1:{info[f'{n}_port']}" for n in ("control", "iopub")]
    finally:
        shell.close(linger=0)
        context.close_waiting()
        context.term()
