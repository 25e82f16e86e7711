"""`%sandbox files`, `upload`, `download` and `%%sandbox write`: files between the notebook's
directory and the sandbox (the host-side rules are in transfer.py and localfiles.py).
"""

from __future__ import annotations

import argparse
import time
from typing import TYPE_CHECKING

from ..errors import FileOperationError, UsageError
from ..sandbox.spec import FileInfo
from ..sandbox.units import human_size
from . import transfer
from .magic_args import MagicExit, MagicParser, magic_parser, table

if TYPE_CHECKING:
    from .commands import Commands


def _files_parser() -> MagicParser:
    p = magic_parser("%sandbox files", "Files in /sandbox (and /tmp). Paths are relative to "
                "/sandbox; links are never followed.")
    sub = p.add_subparsers(dest="op", metavar="OP", parser_class=MagicParser)
    s = sub.add_parser("ls", help="list a directory")
    s.add_argument("path", nargs="?", default="/sandbox")
    s = sub.add_parser("cat", help="show a text file")
    s.add_argument("path")
    s = sub.add_parser("rm", help="delete a file (-r for a directory)")
    s.add_argument("-r", "--recursive", action="store_true")
    s.add_argument("path")
    s = sub.add_parser("mkdir", help="make a directory")
    s.add_argument("-p", "--parents", action="store_true")
    s.add_argument("path")
    s = sub.add_parser("write", help="%%sandbox files write PATH: the cell body to PATH")
    s.add_argument("path")
    s = sub.add_parser("upload", help="copy LOCAL (under the notebook's directory) in")
    s.add_argument("local")
    s.add_argument("remote", nargs="?")
    s = sub.add_parser("download", help="copy REMOTE out, next to the notebook")
    s.add_argument("remote")
    s.add_argument("local", nargs="?")
    s.add_argument("--force", action="store_true", help="replace an existing local file "
                   "(after you confirm at a prompt)")
    return p


class FileCommands:
    """The file subcommands of one kernel's `%sandbox` commands."""

    def __init__(self, cmds: Commands) -> None:
        self.cmds = cmds

    async def cmd_files(self, argv: list[str], body: str | None) -> None:
        p = _files_parser()
        args = p.parse_args(argv)
        if args.op is None:
            raise MagicExit(p.format_help(), False)
        if args.op == "write":
            await self.cmd_write([args.path], body)
            return
        if body is not None:
            raise UsageError("only %%sandbox files write takes a cell body")
        if args.op == "upload":
            await self.cmd_upload([args.local] + ([args.remote] if args.remote else []), None)
        elif args.op == "download":
            await self.cmd_download([args.remote] + ([args.local] if args.local else [])
                                    + (["--force"] if args.force else []), None)
        else:
            try:
                await self._simple(args)
            except FileOperationError as exc:
                raise UsageError(f"%sandbox files {args.op}: {exc}") from None

    async def _simple(self, args: argparse.Namespace) -> None:
        session = await self.cmds.session()
        if args.op == "ls":
            entries, truncated = await session.files.list_dir(args.path)
            self.cmds.show(table(("name", "size", "type", "modified"),
                                  [self._row(e) for e in entries]))
            if truncated:
                self.cmds.say(f"[sandbox] listing truncated at {len(entries)} entries")
        elif args.op == "cat":
            data = await session.files.read(args.path, 1 << 20)
            self.cmds.kernel.stream("stdout", data.decode("utf-8", "replace"))
        elif args.op == "rm":
            await session.files.delete(args.path, args.recursive)
            self.cmds.say(f"[sandbox] removed {args.path}")
        elif args.op == "mkdir":
            await session.files.mkdir(args.path, args.parents)

    @staticmethod
    def _row(e: FileInfo) -> tuple[str, str, str, str]:
        name = e.name.encode("utf-8", "backslashreplace").decode("utf-8")
        return (name + ("/" if e.type == "dir" else ""), human_size(e.size) if e.type ==
                "file" else "", e.type, time.strftime("%Y-%m-%d %H:%M", time.localtime(e.mtime)))

    async def cmd_write(self, argv: list[str], body: str | None) -> None:
        p = magic_parser("%%sandbox write", "Write the cell's body to a file in the sandbox.")
        p.add_argument("path")
        args = p.parse_args(argv)
        if body is None:
            raise UsageError("%sandbox write needs a cell body: use %%sandbox write PATH as "
                             "the first line of a cell")
        session = await self.cmds.session()
        try:
            n = await session.files.write(args.path, body, parents=True)
        except FileOperationError as exc:
            raise UsageError(f"%%sandbox write: {exc}") from None
        self.cmds.say(f"[sandbox] wrote {n} bytes to {args.path}")

    async def cmd_upload(self, argv: list[str], body: str | None) -> None:
        p = magic_parser("%sandbox upload", "Copy a file from the notebook's directory into "
                    "/sandbox. LOCAL must be a regular file under the notebook's directory "
                    "(no links, nothing hidden, nothing in a Jupyter or IPython directory).")
        p.add_argument("local")
        p.add_argument("remote", nargs="?")
        args = p.parse_args(argv)
        session = await self.cmds.session()
        await transfer.upload(self.cmds, session, args.local, args.remote)

    async def cmd_download(self, argv: list[str], body: str | None) -> None:
        p = magic_parser("%sandbox download", "Copy a regular file out of the sandbox into the "
                    "notebook's directory (never into a hidden, Jupyter, IPython or Python "
                    "directory). An existing file is replaced only with --force and after you "
                    "confirm at a prompt; batch runs cannot confirm, so they refuse.")
        p.add_argument("remote")
        p.add_argument("local", nargs="?")
        p.add_argument("--force", action="store_true")
        args = p.parse_args(argv)
        session = await self.cmds.session()
        await transfer.download(self.cmds, session, args.remote, args.local, args.force)

