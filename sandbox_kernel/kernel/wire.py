"""Jupyter's wire protocol for the kernel process: messages signed, framed and checked.

What jupyter_client's Session does for a kernel, and only that: HMAC-SHA256 signatures
over the four JSON frames, identities before the `<IDS|MSG>` delimiter, buffers after, a
refusal of unsigned, mis-signed or replayed messages. Dates go out as ISO 8601 strings in
UTC and come in as the strings they are (docs/architecture.md, "The kernel process").
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import os
import uuid
from collections import OrderedDict
from datetime import datetime, timezone
from typing import Any

DELIM = b"<IDS|MSG>"
#: The messaging protocol version in every header (jupyter_client's, which Jupyter
#: frontends check against theirs).
PROTOCOL_VERSION = "5.4"
_DIGESTS_KEPT = 2**16


class WireError(ValueError):
    """A message that is not valid Jupyter wire format, or not signed with our key."""


def _json_default(obj: Any) -> Any:
    if isinstance(obj, datetime):
        stamp = obj if obj.tzinfo else obj.replace(tzinfo=timezone.utc)
        return stamp.isoformat().replace("+00:00", "Z")
    if isinstance(obj, bytes | bytearray | memoryview):
        return bytes(obj).decode("utf-8", "replace")
    if isinstance(obj, set | frozenset | tuple):
        return list(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serializable")


def _finite(obj: Any) -> Any:
    """NaN and infinities as null: browsers' JSON.parse refuses them."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    return obj


def pack(obj: Any) -> bytes:
    """One JSON frame (UTF-8, non-ASCII kept; lone surrogates survive as in Session)."""
    try:
        text = json.dumps(obj, default=_json_default, ensure_ascii=False, allow_nan=False)
    except ValueError:
        text = json.dumps(_finite(obj), default=_json_default, ensure_ascii=False)
    return text.encode("utf-8", "surrogateescape")


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Wire:
    """Signs and checks messages with one connection's key; makes this kernel's headers."""

    def __init__(self, key: bytes, scheme: str = "hmac-sha256") -> None:
        if not scheme.startswith("hmac-"):
            raise WireError(f"unsupported signature scheme {scheme!r}")
        self.key = key
        name = scheme[5:].replace("-", "")
        if name not in hashlib.algorithms_guaranteed:
            raise WireError(f"unsupported signature scheme {scheme!r}")
        self._digest = name
        self.session = str(uuid.uuid4())
        self._count = 0
        self._pid = os.getpid()
        self._seen: OrderedDict[bytes, None] = OrderedDict()

    def sign(self, frames: list[bytes]) -> bytes:
        if not self.key:
            return b""
        mac = hmac.new(self.key, digestmod=self._digest)
        for frame in frames:
            mac.update(frame)
        return mac.hexdigest().encode("ascii")

    def header(self, msg_type: str) -> dict[str, Any]:
        self._count += 1
        return {"msg_id": f"{self.session}_{self._pid}_{self._count}", "msg_type": msg_type,
                "username": "kernel", "session": self.session, "date": utcnow(),
                "version": PROTOCOL_VERSION}

    def message(self, msg_type: str, content: dict[str, Any] | None = None,
                parent: dict[str, Any] | None = None,
                metadata: dict[str, Any] | None = None) -> dict[str, Any]:
        return {"header": self.header(msg_type), "msg_id": None, "msg_type": msg_type,
                "parent_header": parent.get("header", {}) if parent else {},
                "metadata": metadata or {}, "content": content or {}}

    def frames(self, msg: dict[str, Any], idents: list[bytes] | None = None,
               buffers: list[bytes] | None = None) -> list[bytes]:
        """The multipart frames of `msg`, signed, behind the routing identities."""
        body = [pack(msg["header"]), pack(msg["parent_header"]), pack(msg["metadata"]),
                pack(msg["content"])]
        return [*(idents or []), DELIM, self.sign(body), *body,
                *(bytes(b) for b in buffers or [])]

    def parse(self, parts: list[bytes]) -> tuple[list[bytes], dict[str, Any]]:
        """(identities, message) from received frames; WireError if not ours to trust."""
        try:
            at = parts.index(DELIM)
        except ValueError:
            raise WireError("no <IDS|MSG> delimiter") from None
        idents, rest = parts[:at], parts[at + 1:]
        if len(rest) < 5:
            raise WireError("too few frames")
        signature, body = bytes(rest[0]), [bytes(p) for p in rest[1:5]]
        if self.key:
            if not hmac.compare_digest(signature, self.sign(body)):
                raise WireError("invalid signature")
            if signature in self._seen:
                raise WireError("duplicate signature (a replayed message)")
            self._seen[signature] = None
            if len(self._seen) > _DIGESTS_KEPT:
                self._seen.popitem(last=False)
        try:
            header, parent, metadata, content = (json.loads(b) for b in body)
        except (ValueError, RecursionError) as exc:  # RecursionError: nested too deep
            raise WireError(f"a frame is not JSON: {exc}") from None
        if not isinstance(header, dict) or not isinstance(content, dict):
            raise WireError("header or content is not an object")
        msg = {"header": header, "msg_id": header.get("msg_id"),
               "msg_type": header.get("msg_type"),
               "parent_header": parent if isinstance(parent, dict) else {},
               "metadata": metadata if isinstance(metadata, dict) else {},
               "content": content, "buffers": [bytes(b) for b in rest[5:]]}
        return [bytes(i) for i in idents], msg
