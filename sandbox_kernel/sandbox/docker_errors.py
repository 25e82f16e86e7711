"""The Engine API client's one error hierarchy, and how transport failures become it.

docker_connect.translated turns these into SandboxErrors, once (docs/architecture.md,
"Engine client").
"""

from __future__ import annotations

import contextlib
import http.client
import json
from collections.abc import Callable, Iterator


class EngineError(Exception):
    """Anything that went wrong talking to the engine."""


class EngineConnectionError(EngineError):
    """The engine could not be reached, or the connection broke; the cause is chained."""


class EngineTimeout(EngineConnectionError):
    """The engine did not answer within the client's timeout."""


class APIError(EngineError):
    """The engine answered with an error status."""

    def __init__(self, status_code: int, explanation: str) -> None:
        super().__init__(f"{status_code}: {explanation}")
        self.status_code = status_code
        self.explanation = explanation


class NotFound(APIError):
    """404: no such container, exec or image."""


class ImageNotFound(NotFound):
    """404 naming an image."""


def error_for(status: int, body: bytes, path: str) -> APIError:
    """The error for an error status, by the engine's message (a 404 naming an image is
    ImageNotFound)."""
    try:
        text = str(json.loads(body).get("message", ""))
    except (ValueError, AttributeError):
        text = body.decode("utf-8", "replace")
    text = " ".join(text.split())[:500] or http.client.responses.get(status, "error")
    if status == 404:
        image = path.startswith("/images/") or "no such image" in text.lower()
        return (ImageNotFound if image else NotFound)(status, text)
    return APIError(status, text)


@contextlib.contextmanager
def closed_on_error(close: Callable[[], None]) -> Iterator[None]:
    """On any error, close the connection; transport errors leave as EngineConnectionError."""
    try:
        yield
    except (OSError, http.client.HTTPException) as exc:
        close()
        raise connection_error(exc) from exc
    except BaseException:
        close()
        raise


def connection_error(exc: BaseException) -> EngineConnectionError:
    if isinstance(exc, TimeoutError):
        return EngineTimeout(f"timed out ({exc})")
    return EngineConnectionError(str(exc) or type(exc).__name__)
