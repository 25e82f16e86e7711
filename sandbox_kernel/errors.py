"""One error hierarchy for everything that is not the user's own code failing.

Messages are one sentence a user can act on; Docker's exceptions are translated into these
at a single boundary (the Docker backend) with ``raise ... from``.
"""

from __future__ import annotations


class SandboxError(Exception):
    """Base class: an infrastructure problem, described in one actionable sentence."""


class EngineUnavailable(SandboxError):
    """No Docker engine answers (not installed, not running, or no permission)."""


class ImageMissing(SandboxError):
    """The sandbox image is not present on the engine (build it first)."""


class SessionNotFound(SandboxError, KeyError):
    """No session with that id is known to this manager."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "unknown session"


class SessionGone(SandboxError):
    """The session's container died, was removed, paused or stopped answering."""


class SandboxTimeout(SandboxError):
    """The agent did not answer an infrastructure request in time."""


class LimitError(SandboxError, ValueError):
    """A resource limit value is malformed or outside its allowed range."""


class LiveLimitsUnsupported(LimitError):
    """The engine or its runtime cannot change the limits of a running sandbox."""


class ProtocolError(SandboxError):
    """The agent sent something that is not valid protocol; the session is not trusted."""


class AgentError(SandboxError):
    """The agent refused or failed a request: an errno-style code and one sentence."""

    def __init__(self, message: str, code: str = "EIO") -> None:
        super().__init__(message)
        self.code = code


class FileOperationError(AgentError):
    """A file operation inside the sandbox was refused or failed."""


class ConfigError(SandboxError):
    """The configuration (image, ceilings, settings) is invalid."""


class UsageError(SandboxError):
    """A command or magic was called with arguments that do not fit its grammar."""


class BuildError(SandboxError):
    """An image build failed: resolving, fetching or installing its packages, or docker build."""


class InstallError(SandboxError):
    """A live install was refused or failed; `kind` says which of the documented cases:
    policy, not_found, no_wheel, size, unreachable, failed (docs/architecture.md,
    "Packages")."""

    def __init__(self, message: str, kind: str = "failed") -> None:
        super().__init__(message)
        self.kind = kind
