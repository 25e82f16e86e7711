"""The kernel process's own comms (its resource monitor's widgets), for the `comm` package.

ipywidgets makes comms through `comm.create_comm` and finds targets through
`comm.get_comm_manager`; a kernel registers both. Here a comm publishes on the kernel's
IOPub with the current shell request as parent, as ipykernel's comms do.
"""

from __future__ import annotations

from typing import Any, Protocol

import comm
from comm.base_comm import BaseComm, CommManager


class Publisher(Protocol):
    """What a comm needs of the kernel."""

    paced_iopub: Any
    iopub_socket: Any

    def send_response(self, stream: Any, msg_type: str, content: dict[str, Any] | None = None,
                      ident: Any = None, buffers: Any = None,
                      metadata: dict[str, Any] | None = None) -> dict[str, Any]: ...


class HostComm(BaseComm):
    """A comm whose messages go out on the kernel's IOPub."""

    def __init__(self, kernel: Publisher, *args: Any, **kwargs: Any) -> None:
        self.kernel = kernel  # before BaseComm's __init__, which may open the comm
        super().__init__(*args, **kwargs)

    def publish_msg(self, msg_type: str, data: Any = None, metadata: Any = None,
                    buffers: Any = None, **keys: Any) -> None:
        content = {"data": {} if data is None else data, "comm_id": self.comm_id, **keys}
        kernel = self.kernel
        kernel.send_response(kernel.paced_iopub or kernel.iopub_socket, msg_type, content,
                             ident=self.topic, buffers=buffers, metadata=metadata or {})


def install_comm_factory(kernel: Publisher) -> CommManager:
    """Register this kernel's comm factory and manager with `comm`; the manager."""
    manager = CommManager()

    def create_comm(*args: Any, **kwargs: Any) -> BaseComm:
        return HostComm(kernel, *args, **kwargs)

    comm.create_comm = create_comm
    comm.get_comm_manager = lambda: manager
    return manager
