"""Say why the network fails: once per kernel, after the first cell whose output shows a
name lookup or a connection failing, one stderr line on how packages get in.

The sandbox has only a loopback interface, so every lookup and outbound connection fails;
the messages below are what Python, pip, Node, npm, curl, wget and git print then. A cell
that prints one on purpose only gets the hint; nothing else depends on it.
"""

from __future__ import annotations

import re
from typing import Any

from .interfaces import Frontend

HINT = ("[sandbox] this sandbox has no network (only a loopback interface): nothing in it "
        "can look up a name or connect out. Packages come in through the host: %pip install "
        "NAME in Python cells, npm install NAME in Node cells; files: %sandbox upload.")
_FAILURES = re.compile("|".join((
    r"Temporary failure in name resolution", r"Name or service not known",
    r"No address associated with hostname", r"Network is unreachable",
    r"getaddrinfo (?:ENOTFOUND|EAI_AGAIN)", r"connect ENETUNREACH",
    r"Could not resolve host", r"unable to resolve host address",
    r"Temporary failure resolving", r"\(from versions: none\)",
)))
_TAIL = 64 * 1024  # per output: enough for any traceback's last lines


class NetworkHint:
    """Watches a cell's stderr and errors for network failures; `take()` the line, once.

    Standard output is not scanned: it is where bulk output goes, and failures are reported
    on stderr or as an error."""

    def __init__(self) -> None:
        self.seen = False
        self.shown = False

    def feed(self, msg_type: str, content: dict[str, Any]) -> None:
        if self.shown or self.seen:
            return
        if msg_type == "stream" and content.get("name") == "stderr":  # where tools say it
            text = str(content.get("text", ""))
        elif msg_type == "error":
            text = f"{content.get('evalue', '')}\n" + "\n".join(
                str(x) for x in content.get("traceback", [])[-5:])
        else:
            return
        self.seen = bool(_FAILURES.search(text[-_TAIL:]))

    def take(self) -> str | None:
        """The hint, the first time a failure was seen; None otherwise."""
        if not self.seen or self.shown:
            self.seen = False
            return None
        self.shown = True
        return HINT + "\n"

    def watch(self, frontend: Frontend) -> Frontend:
        """The frontend, with every output it publishes fed to this hint first."""
        return _Watched(frontend, self)


class _Watched:
    def __init__(self, inner: Frontend, hint: NetworkHint) -> None:
        self.inner = inner
        self.hint = hint

    def publish(self, msg_type: str, content: dict[str, Any]) -> None:
        self.hint.feed(msg_type, content)
        self.inner.publish(msg_type, content)

    async def iopub_room(self) -> None:
        await self.inner.iopub_room()

    def iopub_lost(self) -> int:
        return self.inner.iopub_lost()

    async def ask(self, prompt: str, password: bool = False) -> str | None:
        return await self.inner.ask(prompt, password)
