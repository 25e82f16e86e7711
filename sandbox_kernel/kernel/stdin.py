"""What the kernel tells and asks the frontend outside IOPub: its language_info, and
input on the stdin channel, as ipykernel does for input()."""

from __future__ import annotations

import asyncio
from typing import Any

import zmq


async def ask_frontend(kernel: Any, prompt: str, password: bool) -> str:
    """Send an input_request for the current shell message and wait for its input_reply.

    `kernel` is an ipykernel Kernel (its session, stdin socket and parent). Replies that
    are malformed are skipped, as ipykernel does.
    """
    shell_var = getattr(kernel, "_get_shell_context_var", None)  # not in ipykernel 7.0
    ident = (shell_var(kernel._shell_parent_ident) if shell_var is not None
             else kernel._shell_parent_ident.get())
    parent = kernel.get_parent("shell")
    while True:  # drop a stale reply, e.g. from an earlier cancelled request
        try:
            kernel.stdin_socket.recv_multipart(zmq.NOBLOCK)
        except zmq.ZMQError:
            break
    kernel.session.send(kernel.stdin_socket, "input_request",
                        {"prompt": prompt, "password": password}, parent, ident=ident)
    while True:
        try:
            _, reply = kernel.session.recv(kernel.stdin_socket, zmq.NOBLOCK)
        except Exception:  # noqa: BLE001 - a malformed reply is skipped
            reply = None
        if reply is not None:
            content = reply.get("content") if isinstance(reply, dict) else None
            value = content.get("value") if isinstance(content, dict) else ""
            return value if isinstance(value, str) else ""
        await asyncio.sleep(0.02)


def language_info(language: str, python: str, node: str) -> dict[str, Any]:
    """kernel_info's language_info for the kernelspec's language."""
    if language == "node":
        return {"name": "javascript", "version": node, "mimetype": "application/javascript",
                "file_extension": ".js", "pygments_lexer": "javascript",
                "codemirror_mode": "javascript", "nbconvert_exporter": "javascript"}
    return {"name": "python", "version": python, "mimetype": "text/x-python",
            "file_extension": ".py", "pygments_lexer": "ipython3",
            "codemirror_mode": {"name": "ipython", "version": 3}, "nbconvert_exporter": "python"}
