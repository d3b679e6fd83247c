"""Error translation at the HTTP edge: one table from exception to status, headers and body.

Every error body is ``{"error", "hint", "type", "request_id"}`` (V2 clients read ``error``). A
:class:`~modelport.core.errors.ModelportError` carries its own status; a few foreign exceptions
are mapped here; anything else is a 500 whose body names only the request id while the full
traceback goes to the server log under that id. Bodies never carry tracebacks, paths or library
versions.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import orjson
from starlette.exceptions import HTTPException

from modelport.core.errors import (
    BadRequest,
    DeadlineExceeded,
    ModelportError,
    Overloaded,
    PayloadTooLarge,
    RateLimited,
    ServiceUnavailable,
    Unauthenticated,
    Unsupported,
)

logger = logging.getLogger("modelport.server")

JSON_TYPE = "application/json"


@dataclass(frozen=True, slots=True)
class ErrorReply:
    """What the server answers for one exception."""

    status: int
    body: bytes
    headers: tuple[tuple[bytes, bytes], ...]


class RetryLater(Overloaded):
    """A 503 that tells the client when to come back (``Retry-After``)."""

    def __init__(self, message: str, *, hint: str | None = None, retry_after_s: int = 1) -> None:
        super().__init__(message, hint=hint)
        self.retry_after_s = retry_after_s


class UnsupportedMediaType(Unsupported):
    """A 415: the body's media type (or content encoding) is not one this route reads."""

    http_status = 415


class TooManyFailures(RateLimited):
    """A 429 after repeated authentication failures, with ``Retry-After``."""

    def __init__(self, message: str, *, hint: str | None = None, retry_after_s: int = 60) -> None:
        super().__init__(message, hint=hint)
        self.retry_after_s = retry_after_s


def _extra_headers(exc: ModelportError) -> tuple[tuple[bytes, bytes], ...]:
    retry_after = getattr(exc, "retry_after_s", None)
    if retry_after is None and isinstance(exc, Overloaded | ServiceUnavailable | RateLimited):
        retry_after = 1
    headers: list[tuple[bytes, bytes]] = []
    if retry_after is not None:
        headers.append((b"retry-after", str(int(retry_after)).encode()))
    if isinstance(exc, Unauthenticated):
        headers.append((b"www-authenticate", b'Bearer realm="modelport"'))
    return tuple(headers)


_HTTP_STATUS_TYPES: dict[int, tuple[str, str]] = {
    404: ("NotFound", "See GET /docs for the routes this server answers."),
    405: ("MethodNotAllowed", "See GET /docs for the methods each route accepts."),
}


def translate(exc: BaseException, request_id: str) -> ErrorReply:
    """Map ``exc`` to the reply sent to the client; log unexpected errors with their traceback.

    Args:
        exc: What was raised while handling the request.
        request_id: Echoed in the body so that the client can quote it to the operator.

    Returns:
        Status, JSON body and extra headers.
    """
    if isinstance(exc, TimeoutError) and not isinstance(exc, ModelportError):
        exc = DeadlineExceeded(
            "The request took longer than the server's request timeout.",
            hint="Send fewer rows per request, or raise request_timeout_s.",
        )
    if isinstance(exc, orjson.JSONDecodeError):
        exc = BadRequest(f"Malformed JSON body: {exc}.", hint="Send a valid JSON document (UTF-8).")
    if isinstance(exc, ModelportError):
        body = {"error": exc.message, "hint": exc.hint, "type": exc.type, "request_id": request_id}
        return ErrorReply(exc.http_status, orjson.dumps(body), _extra_headers(exc))
    if isinstance(exc, HTTPException):
        kind, hint = _HTTP_STATUS_TYPES.get(exc.status_code, ("HTTPError", "See GET /docs."))
        body = {"error": str(exc.detail), "hint": hint, "type": kind, "request_id": request_id}
        headers = tuple((k.lower().encode(), v.encode()) for k, v in (exc.headers or {}).items())
        return ErrorReply(exc.status_code, orjson.dumps(body), headers)
    logger.error("Unexpected error while handling request %s", request_id, exc_info=exc)
    body = {
        "error": "Internal server error.",
        "hint": f"Report request id {request_id} to the operator; the server log has the details.",
        "type": "InternalError",
        "request_id": request_id,
    }
    return ErrorReply(500, orjson.dumps(body), ())


def too_large(limit: int, what: str = "Request body") -> PayloadTooLarge:
    """The 413 error for a body over ``limit`` bytes."""
    return PayloadTooLarge(
        f"{what} exceeds the limit of {limit} bytes (measured after decompression).",
        hint="Split the request into smaller batches, or raise max_body_bytes on the server.",
    )
