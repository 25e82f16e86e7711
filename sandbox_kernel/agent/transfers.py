"""File requests: streamed reads and writes in raw chunks, and the small file operations.

A read sends the bytes the file had when it was opened (never more, within the cap),
one chunk at a time, waiting whenever the host link is backed up. A write takes the
chunks the host sends after its request until the announced size has arrived.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable

from . import files
from .frames import Frame
from .loop import Loop
from .privilege import Identity, as_worker
from .protocol import CHUNK_BYTES


class Upload:
    __slots__ = ("failed", "fd", "path", "received", "size")

    def __init__(self, fd: int, path: str, size: int) -> None:
        self.fd, self.path, self.size = fd, path, size
        self.received = 0
        self.failed: files.FileOpError | None = None


class Transfers:
    """Reads and writes of one agent; `reply`/`fail` answer the host."""

    def __init__(self, loop: Loop, reply: Callable[..., None],
                 fail: Callable[[int, str, str], None], send_chunk: Callable[[int, bytes], None],
                 drain: Callable[[], Awaitable[None]], ident: Identity,
                 open_staged: Callable[[str], int] | None = None) -> None:
        self.loop = loop
        self.ident = ident
        self.reply = reply
        self.open_staged = open_staged
        self.fail = fail
        self.send_chunk = send_chunk
        self.drain = drain
        self.uploads: dict[int, Upload] = {}
        self.cancelled: set[int] = set()

    def handle(self, req: Frame) -> None:
        rid = req["id"]
        try:
            if req["type"] == "stage":
                self._open_upload(req)  # as the installer (packages.open_staged switches)
            else:
                with as_worker(self.ident):
                    self._handle(req)
        except files.FileOpError as exc:
            self.fail(rid, exc.code, exc.message)
        except OSError as exc:
            self.fail(rid, "EIO", f"{req.get('path', '?')}: {exc.strerror or exc}")

    def _handle(self, req: Frame) -> None:
        {"read": self._read, "write": self._open_upload, "chunk": self._chunk,
         "cancel": self._cancel_request, "list": self._list, "stat": self._stat,
         "delete": self._delete, "mkdir": self._mkdir}[req["type"]](req)

    async def _send(self, rid: int, fd: int, size: int) -> None:
        """Exactly the `size` bytes seen at open, in chunks, at the pace the host reads."""
        sent = 0
        try:
            while sent < size and rid not in self.cancelled:
                data = os.read(fd, min(CHUNK_BYTES, size - sent))
                if not data:
                    break
                self.send_chunk(rid, data)
                sent += len(data)
                await self.drain()
        except OSError as exc:
            self.fail(rid, "EIO", f"read failed: {exc.strerror or exc}")
            return
        finally:
            os.close(fd)
        if rid in self.cancelled:
            self.cancelled.discard(rid)
            self.fail(rid, "ECANCELED", "the transfer was cancelled")
            return
        self.reply(rid, size=sent)

    def _read(self, req: Frame) -> None:
        fd, size = files.open_regular(req["path"], req["max_bytes"])
        self.loop.create_task(self._send(req["id"], fd, size))

    def _list(self, req: Frame) -> None:
        entries, truncated = files.list_dir(req["path"])
        self.reply(req["id"], entries=entries, truncated=truncated)

    def _stat(self, req: Frame) -> None:
        self.reply(req["id"], entry=files.stat_path(req["path"]))

    def _delete(self, req: Frame) -> None:
        files.delete(req["path"], req["recursive"])
        self.reply(req["id"])

    def _mkdir(self, req: Frame) -> None:
        files.mkdir(req["path"], req["parents"])
        self.reply(req["id"])

    def _cancel_request(self, req: Frame) -> None:
        self._cancel(req["target"])
        self.reply(req["id"])

    def _cancel(self, target: int) -> None:
        up = self.uploads.get(target)
        if up is None:
            self.cancelled.add(target)  # a read in progress stops at its next chunk
            return
        up.failed = files.FileOpError("ECANCELED", "the transfer was cancelled")
        up.size = up.received
        self._close_upload(target)

    def _open_upload(self, req: Frame) -> None:
        """A `write` into /sandbox or /tmp, or a `stage` into the installer's folder."""
        if req["type"] == "stage":
            if self.open_staged is None:
                raise files.FileOpError("ENOTSUP", "this agent stages no packages")
            fd, path = self.open_staged(req["name"]), req["name"]
        else:
            fd = files.open_for_write(req["path"], req["append"], req["parents"])
            path = req["path"]
        up = Upload(fd=fd, path=path, size=req["size"])
        self.uploads[req["id"]] = up
        if up.size == 0:
            self._close_upload(req["id"])

    def _chunk(self, req: Frame) -> None:
        up = self.uploads.get(req["id"])
        if up is None:
            return  # the upload already failed and was answered
        data: bytes = req["payload"]
        if up.failed is None:
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(up.fd, view):]
            except OSError as exc:
                up.failed = files.FileOpError("ENOSPC" if exc.errno == 28 else "EIO",
                                              f"{up.path}: {exc.strerror or exc}")
        up.received += len(data)
        if up.received >= up.size:
            self._close_upload(req["id"])

    def _close_upload(self, rid: int) -> None:
        up = self.uploads.pop(rid)
        os.close(up.fd)
        if up.failed is not None:
            self.fail(rid, up.failed.code, up.failed.message)
        elif up.received != up.size:
            self.fail(rid, "EIO", f"{up.path}: got {up.received} of {up.size} bytes")
        else:
            self.reply(rid, written=up.received)

    def abort_all(self) -> None:
        for rid in list(self.uploads):
            os.close(self.uploads.pop(rid).fd)
