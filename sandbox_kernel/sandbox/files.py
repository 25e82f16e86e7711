"""Files inside a sandbox: streamed reads and writes in raw chunks, and small operations.

Bytes travel as binary chunk frames, one at a time with back-pressure on both sides, so a
transfer of any size holds at most a chunk or two in memory here.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any

from ..agent.protocol import CHUNK_BYTES, MAX_TRANSFER
from ..errors import AgentError, FileOperationError, ProtocolError, SandboxTimeout, SessionGone
from .spec import FileInfo

if TYPE_CHECKING:
    from .channel import Call
    from .session import AsyncSession

Sink = Callable[[bytes], Awaitable[None] | None]
Progress = Callable[[int], None] | None
DEFAULT_CAP = 256 * 2**20
#: A transfer with no frame for this long means a stalled sandbox.
_STALL_S = 60.0


def file_info(e: Any) -> FileInfo | None:
    """An entry from the agent as a FileInfo, or None if it is malformed."""
    if not isinstance(e, dict) or not isinstance(e.get("name"), str):
        return None

    def num(key: str) -> float:
        v = e.get(key)
        return v if isinstance(v, (int, float)) and not isinstance(v, bool) else 0

    kind = e.get("type")
    return FileInfo(name=e["name"][:4096],
                    type=kind if kind in ("file", "dir", "symlink", "other") else "other",
                    size=int(num("size")), mtime=float(num("mtime")), mode=int(num("mode")))


class Files:
    """The file operations of one AsyncSession."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def _request(self, rtype: str, **fields: Any) -> dict[str, Any]:
        try:
            return await self.session.request(rtype, **fields)
        except AgentError as exc:
            raise FileOperationError(str(exc), exc.code) from None

    async def read_to(self, path: str, sink: Sink, max_bytes: int = DEFAULT_CAP,
                      on_progress: Progress = None) -> int:
        """Stream a regular file from /sandbox or /tmp into `sink`; return its size."""
        s = self.session
        s.touch()
        call = await s.channel.call("read", path=path, max_bytes=min(max_bytes, MAX_TRANSFER))
        total = 0
        try:
            while call.final is None:
                frame = await call.next(_STALL_S)
                if frame["type"] == "chunk":
                    total += len(frame["payload"])
                    if total > max_bytes:
                        raise FileOperationError(f"{path}: larger than {max_bytes} bytes",
                                                 "EFBIG")
                    await _give(sink, frame["payload"])
                    if on_progress is not None:
                        on_progress(total)
                else:
                    _check_end(frame, total)
        except (SandboxTimeout, SessionGone) as exc:
            raise SessionGone(await _diagnosis(s, exc)) from None
        finally:
            s.channel.forget(call)
            if call.final is None and s.alive:
                await self._cancel(call.id)
        return total

    async def _cancel(self, target: int) -> None:
        try:
            await s_request(self.session, "cancel", target)
        except (AgentError, SessionGone, SandboxTimeout):
            pass

    async def read(self, path: str, max_bytes: int = DEFAULT_CAP,
                   on_progress: Progress = None) -> bytes:
        parts: list[bytes] = []
        await self.read_to(path, parts.append, max_bytes, on_progress)
        return b"".join(parts)

    async def write_from(self, path: str, source: Iterable[bytes] | AsyncIterator[bytes],
                         size: int, *, parents: bool = False, append: bool = False,
                         on_progress: Progress = None) -> int:
        """Stream exactly `size` bytes from `source` into a file in /sandbox or /tmp."""
        return await self._upload(path, source, size, on_progress, "write",
                                  {"path": path, "parents": parents, "append": append})

    async def stage_from(self, name: str, source: Iterable[bytes] | AsyncIterator[bytes],
                         size: int, on_progress: Progress = None) -> int:
        """Stream a fetched package file into the installer's staging folder (only the host
        stages; cell code cannot write there, docs/architecture.md "Packages")."""
        return await self._upload(name, source, size, on_progress, "stage", {"name": name})

    async def _upload(self, path: str, source: Iterable[bytes] | AsyncIterator[bytes],
                      size: int, on_progress: Progress, rtype: str,
                      fields: dict[str, Any]) -> int:
        s = self.session
        if not 0 <= size <= MAX_TRANSFER:
            raise FileOperationError(f"{path}: {size} bytes is over the transfer cap", "EFBIG")
        s.touch()
        call = await s.channel.call(rtype, size=size, **fields)
        try:
            sent = await self._send(call, source, size, on_progress)
            if sent < size and not call.queue.qsize():
                await self._cancel(call.id)
                raise FileOperationError(f"{path}: the source ended after {sent} of {size} "
                                         "bytes", "EIO")
            frame = await call.next(_STALL_S)
        except (SandboxTimeout, SessionGone) as exc:
            raise SessionGone(await _diagnosis(s, exc)) from None
        finally:
            s.channel.forget(call)
        if frame["status"] != "ok":
            raise FileOperationError(frame.get("message", "write failed"),
                                     frame.get("code", "EIO"))
        return int(frame["body"]["written"])

    async def _send(self, call: Call, source: Iterable[bytes] | AsyncIterator[bytes],
                    size: int, on_progress: Progress) -> int:
        """Chunks of `source` up to `size` bytes, until the agent answers; the bytes sent."""
        sent = 0
        try:
            async for piece in _chunks(source):
                if call.queue.qsize() or sent >= size:
                    break  # the agent answered early (refused) or the source overran
                data = piece[: size - sent]
                for start in range(0, len(data), CHUNK_BYTES):
                    part = data[start : start + CHUNK_BYTES]
                    await self.session.channel.send_chunk(call.id, part)
                    sent += len(part)
                    if on_progress is not None:
                        on_progress(sent)
        finally:
            aclose = getattr(source, "aclose", None)
            if aclose is not None:
                await aclose()  # a read-ahead ends before the caller closes what it reads
        return sent

    async def write(self, path: str, data: bytes | str, *, parents: bool = False,
                    on_progress: Progress = None) -> int:
        raw = data.encode("utf-8") if isinstance(data, str) else bytes(data)
        return await self.write_from(path, [raw], len(raw), parents=parents,
                                     on_progress=on_progress)

    async def list_dir(self, path: str = "/sandbox") -> tuple[list[FileInfo], bool]:
        """Directory entries (sorted, at most 10,000) and whether the list was truncated."""
        body = await self._request("list", path=path)
        entries = [file_info(e) for e in body["entries"]]
        return [e for e in entries if e is not None], body["truncated"] is True

    async def stat(self, path: str) -> FileInfo:
        info = file_info((await self._request("stat", path=path))["entry"])
        if info is None:
            raise ProtocolError("the sandbox agent sent a malformed file entry")
        return info

    async def delete(self, path: str, recursive: bool = False) -> None:
        await self._request("delete", path=path, recursive=recursive)

    async def mkdir(self, path: str, parents: bool = False) -> None:
        await self._request("mkdir", path=path, parents=parents)


async def _diagnosis(s: AsyncSession, exc: BaseException) -> str:
    """Why a transfer ended: a stalled agent (timed out) or a sandbox that went away."""
    return await s.diagnose(stalled=isinstance(exc, SandboxTimeout))


async def _give(sink: Sink, data: bytes) -> None:
    done = sink(data)
    if inspect.isawaitable(done):
        await done


def _check_end(frame: dict[str, Any], total: int) -> None:
    """The reply that ends a read: an error, or the size that was sent."""
    if frame["type"] != "reply":
        raise ProtocolError(f"the sandbox answered a read with {frame['type']}")
    if frame["status"] != "ok":
        raise FileOperationError(frame.get("message", "read failed"), frame.get("code", "EIO"))
    if frame["body"]["size"] != total:
        raise ProtocolError("the sandbox sent a different size than it said")


async def s_request(session: AsyncSession, rtype: str, target: int) -> None:
    await session.request(rtype, target=target, timeout=10, activity=False)


async def read_ahead(read: Callable[[], bytes]) -> AsyncIterator[bytes]:
    """Chunks from a blocking `read` (b"" at the end), each read in a thread while the one
    before it is sent: reading and sending overlap, and two chunks at most are held."""
    loop = asyncio.get_running_loop()
    ahead = loop.run_in_executor(None, read)
    try:
        while chunk := await ahead:
            ahead = loop.run_in_executor(None, read)
            yield chunk
    finally:
        if not ahead.done():
            await asyncio.wait([ahead])  # no read of the source outlives its iteration
        if not ahead.cancelled():
            ahead.exception()  # the consumer stopped: a failed read ahead is moot


async def _chunks(source: Iterable[bytes] | AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    if hasattr(source, "__aiter__"):
        async for chunk in source:
            yield chunk
    else:
        for chunk in source:
            yield chunk
