"""The access log: one JSON line per request on the ``modelport.server.access`` logger.

Fields: ``ts`` (UTC, ISO 8601), ``request_id``, ``method``, ``path``, ``status``, ``latency_ms``,
``model``, ``version``, ``client`` and, for errors, ``error_type``. Never headers, bodies or query
strings, so keys and personal data stay out of it. Operators route the logger with ordinary
logging configuration; when INFO is disabled the line is never built.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import orjson

ACCESS_LOGGER = "modelport.server.access"


class AccessLog:
    """Writes access-log lines.

    Args:
        enabled: When false, :meth:`write` does nothing.
        logger: Where lines go (default the ``modelport.server.access`` logger).
    """

    def __init__(self, enabled: bool = True, logger: logging.Logger | None = None) -> None:
        self.enabled = enabled
        self.logger = logger or logging.getLogger(ACCESS_LOGGER)

    @property
    def active(self) -> bool:
        """Whether lines should be written: enabled, and the logger takes INFO."""
        return self.enabled and self.logger.isEnabledFor(logging.INFO)

    def write(
        self,
        *,
        request_id: str,
        method: str,
        path: str,
        status: int,
        latency_ms: float,
        model: str | None,
        version: int | None,
        client: str | None,
        error_type: str | None = None,
    ) -> None:
        """Log one request (callers ask :attr:`active` first, so a disabled log costs them no call)."""
        line = {
            "ts": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "request_id": request_id,
            "method": method,
            "path": path,
            "status": status,
            "latency_ms": round(latency_ms, 3),
            "model": model,
            "version": version,
            "client": client,
        }
        if error_type is not None:
            line["error_type"] = error_type
        self.logger.info(orjson.dumps(line).decode())
