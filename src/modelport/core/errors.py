"""The one exception tree of modelport.

Every error names what was wrong and carries a hint on how to fix it, an HTTP status for the
server and an exit code for the CLI. Library code raises these; the server and the CLI each
translate them once, at their edge.
"""

from __future__ import annotations

from typing import Any, ClassVar


class ModelportError(Exception):
    """Base of every error modelport raises on purpose.

    Args:
        message: What went wrong, naming the offending value.
        hint: How to fix it.
    """

    http_status: ClassVar[int] = 500
    exit_code: ClassVar[int] = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    @property
    def type(self) -> str:
        """The error's class name, as sent to clients in the ``type`` field."""
        return type(self).__name__

    def to_dict(self) -> dict[str, Any]:
        """The public body of this error: ``error``, ``hint`` and ``type``."""
        return {"error": self.message, "hint": self.hint, "type": self.type}

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message} Hint: {self.hint}"


class BadRequest(ModelportError):
    """The request itself is malformed (unparseable JSON, wrong structure)."""

    http_status = 400
    exit_code = 2


class ValidationError(ModelportError):
    """Input data does not match the model's signature."""

    http_status = 422
    exit_code = 2


class InvalidName(ValidationError):
    """A model, alias or SQL identifier does not follow the allowed grammar."""

    http_status = 400


class NotFound(ModelportError):
    """A model, version, alias, run or file does not exist."""

    http_status = 404
    exit_code = 3


class Conflict(ModelportError):
    """The operation clashes with the current state (e.g. deleting a version an alias points to)."""

    http_status = 409
    exit_code = 4


class IntegrityError(ModelportError):
    """A bundle or artifact is tampered, truncated or incomplete."""

    http_status = 500
    exit_code = 5


class Unsupported(ModelportError):
    """The model, format or option is not supported."""

    http_status = 400
    exit_code = 6


class MissingDependency(Unsupported):
    """An optional framework is not installed; the hint names the extra to install."""

    @classmethod
    def for_extra(cls, module: str, extra: str) -> MissingDependency:
        """Build the error for a missing optional ``module`` provided by ``extra``."""
        return cls(
            f"The '{module}' package is not installed.",
            hint=f"Install it with: pip install 'modelport[{extra}]'",
        )


class UntrustedArtifact(ModelportError):
    """A pickle artifact was about to be loaded without the operator trusting it."""

    http_status = 403
    exit_code = 7


class Unauthenticated(ModelportError):
    """No credentials, or credentials that match no key."""

    http_status = 401
    exit_code = 8


class PermissionDenied(ModelportError):
    """The caller is known but lacks the role or scope for this action."""

    http_status = 403
    exit_code = 8


class RateLimited(ModelportError):
    """Too many failed attempts or requests from one client."""

    http_status = 429
    exit_code = 9


class PayloadTooLarge(ModelportError):
    """A request body or archive exceeds its size limit."""

    http_status = 413
    exit_code = 2


class Overloaded(ModelportError):
    """A bounded queue is full; retry later."""

    http_status = 503
    exit_code = 10


class DeadlineExceeded(ModelportError):
    """A request or job ran past its time limit."""

    http_status = 504
    exit_code = 10


class ServiceUnavailable(ModelportError):
    """A dependency (database, cache, model) is unreachable or not ready."""

    http_status = 503
    exit_code = 10


class ConfigError(ModelportError):
    """Settings or a configuration file are invalid."""

    http_status = 500
    exit_code = 2
