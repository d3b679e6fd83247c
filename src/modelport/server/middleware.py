"""The per-request envelope: request id, error translation, metrics, access log, in-flight count.

One pure-ASGI middleware (no ``BaseHTTPMiddleware``, no per-request objects beyond a small slots
record): it assigns or accepts the request id (``X-Request-ID``, returned on every response),
turns any exception into the error body of :mod:`modelport.server.errors` (a traceback only ever
reaches the server log), counts requests by route, model and status, writes the access-log line,
and tracks in-flight requests so that shutdown can drain them.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import re
import time
from typing import Any

from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from modelport.core.errors import ModelportError
from modelport.server.accesslog import AccessLog
from modelport.server.errors import JSON_TYPE, ErrorReply, translate
from modelport.server.metrics import ServerMetrics

REQUEST_ID_HEADER = b"x-request-id"
CLIENT_CLOSED = 499
"""Status recorded (never sent) when the client went away before the body was read."""
_SAFE_ID = re.compile(rb"^[A-Za-z0-9._:-]{1,64}$")
_JSON = JSON_TYPE.encode()


class RequestInfo:
    """What the endpoint tells the envelope about one request (stored at ``scope["modelport"]``)."""

    __slots__ = ("direct", "error_type", "model", "request_id", "route", "started", "status", "version")

    def __init__(self, request_id: str, direct: bool = False) -> None:
        self.started = time.perf_counter()
        self.request_id = request_id
        self.route = "unmatched"
        self.model: str | None = None
        self.version: int | None = None
        self.error_type: str | None = None
        self.direct = direct
        """The endpoint sends the ``X-Request-ID`` header itself and sets :attr:`status` (fast path)."""
        self.status = 0
        """The status sent, once the response has started (0 before)."""


def id_header(info: RequestInfo) -> tuple[bytes, bytes]:
    """The ``X-Request-ID`` response header of the request ``info`` describes."""
    return (REQUEST_ID_HEADER, info.request_id.encode("ascii"))


def error_headers(reply: ErrorReply, info: RequestInfo) -> list[tuple[bytes, bytes]]:
    """The headers of the error ``reply`` to the request ``info`` describes (its length, type and id)."""
    return [
        (b"content-type", _JSON),
        (b"content-length", str(len(reply.body)).encode()),
        *reply.headers,
        id_header(info),
    ]


def request_info(scope: Scope) -> RequestInfo:
    """The :class:`RequestInfo` of the request in ``scope``."""
    info: RequestInfo = scope["modelport"]
    return info


def _request_id(headers: list[tuple[bytes, bytes]], ids: RequestIds) -> str:
    for name, value in headers:
        if name == REQUEST_ID_HEADER and _SAFE_ID.match(value):
            return value.decode("ascii")
    return ids.next()


class RequestIds:
    """Request ids: 24 hex digits, a random per-app prefix then a counter (no system call per request)."""

    __slots__ = ("_counter", "_prefix")

    def __init__(self) -> None:
        self._prefix = os.urandom(6).hex()
        self._counter = itertools.count(1)

    def next(self) -> str:
        """A new id, unique within this app and, by its random prefix, across apps and processes."""
        return f"{self._prefix}{next(self._counter) & 0xFFFFFFFFFFFF:012x}"


class InFlight:
    """Counts requests being handled; :meth:`wait_idle` returns when none are."""

    def __init__(self) -> None:
        self.count = 0
        self._idle: asyncio.Event | None = None

    def enter(self) -> None:
        """One more request."""
        self.count += 1

    def leave(self) -> None:
        """One request done."""
        self.count -= 1
        if self.count == 0 and self._idle is not None:
            self._idle.set()

    async def wait_idle(self, timeout_s: float) -> bool:
        """Wait until no request is in flight, at most ``timeout_s``; return whether it happened."""
        if self.count == 0:
            return True
        self._idle = asyncio.Event()
        try:
            async with asyncio.timeout(timeout_s):
                await self._idle.wait()
        except TimeoutError:
            return False
        finally:
            self._idle = None
        return True


class RequestEnvelope:
    """The outermost application middleware.

    Args:
        app: The router (and Starlette's exception middleware) inside.
        metrics: Request metrics.
        access_log: Access-log writer.
        in_flight: The shared in-flight counter.
    """

    def __init__(self, app: ASGIApp, *, metrics: ServerMetrics, access_log: AccessLog, in_flight: InFlight) -> None:
        self.app = app
        self.metrics = metrics
        self.access_log = access_log
        self.in_flight = in_flight
        self.ids = RequestIds()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        info = RequestInfo(_request_id(scope["headers"], self.ids))
        scope["modelport"] = info
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = info.status = message["status"]
                message["headers"] = [*message.get("headers", ()), id_header(info)]
            await send(message)

        self.in_flight.enter()
        try:
            await self.app(scope, receive, send_with_id)
        except Exception as exc:
            status = await self._fail(exc, info, send)
        finally:
            self.close(info, status, scope["method"], scope["path"], scope.get("client"))

    async def direct(self, scope: Scope, receive: Receive, send: Send, app: ASGIApp) -> None:
        """Run ``app`` for one HTTP request inside the envelope, without wrapping ``send``.

        The prediction fast path: ``app`` sees ``info.direct``, adds the ``X-Request-ID`` header
        itself (see :func:`id_header`) and records the status it sent in :attr:`RequestInfo.status`.
        """
        info = scope["modelport"] = self.open(scope["headers"])
        try:
            await app(scope, receive, send)
        except Exception as exc:
            await self._fail(exc, info, send)
        finally:
            self.close(info, info.status or 500, scope["method"], scope["path"], scope.get("client"))

    def open(self, headers: list[tuple[bytes, bytes]]) -> RequestInfo:
        """Start one request handled outside ASGI (see :mod:`modelport.server.direct`) or by :meth:`direct`.

        Its id is accepted from ``X-Request-ID`` or assigned; it counts as in flight until :meth:`close`.
        """
        info = RequestInfo(_request_id(headers, self.ids), True)
        self.in_flight.count += 1  # InFlight.enter, inlined on the hot path
        return info

    def close(self, info: RequestInfo, status: int, method: str, path: str, client: Any) -> None:
        """End a request :meth:`open` started: no longer in flight; metrics and the access log record it."""
        self.in_flight.leave()
        self._record(info, status, method, path, client, time.perf_counter() - info.started)

    def reply(self, exc: Exception, info: RequestInfo) -> ErrorReply | None:
        """The error reply for ``exc`` (noted in ``info``), or ``None`` for a client that went away."""
        if isinstance(exc, ClientDisconnect):
            info.error_type = "ClientDisconnect"
            info.status = CLIENT_CLOSED
            return None
        info.error_type = exc.type if isinstance(exc, ModelportError) else type(exc).__name__
        return translate(exc, info.request_id)  # logs unexpected errors

    async def _fail(self, exc: Exception, info: RequestInfo, send: Send) -> int:
        """Answer ``exc`` (unless a response is already underway); return the status to record."""
        reply = self.reply(exc, info)
        if reply is None:
            return CLIENT_CLOSED
        if info.status:
            return info.status  # the response is already underway: nothing more can be sent
        info.status = reply.status
        await send({"type": "http.response.start", "status": reply.status, "headers": error_headers(reply, info)})
        await send({"type": "http.response.body", "body": reply.body})
        return reply.status

    def _record(self, info: RequestInfo, status: int, method: str, path: str, client: Any, seconds: float) -> None:
        self.metrics.observe_request(info.route, info.model or "", status, seconds)
        if not self.access_log.active:
            return
        self.access_log.write(
            request_id=info.request_id,
            method=method,
            path=path,
            status=status,
            latency_ms=seconds * 1e3,
            model=info.model,
            version=info.version,
            client=client[0] if client else None,
            error_type=info.error_type,
        )
