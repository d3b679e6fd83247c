"""Prediction requests answered without an ASGI cycle or a task: the server's hottest path.

Under uvicorn, each request costs a scope dict, a request-response cycle, an ``asyncio.Event``, a
task (registered in a weak set), receive and send messages and header checks, before and after
the app's own work. For the requests that matter most (``POST`` V2 ``infer`` and V1 ``:predict``),
modelport's HTTP protocol (:mod:`modelport.server.http_protocol`) asks :class:`DirectPredictions`
first. When it takes the request, the protocol hands over the whole body once it has arrived and
the prediction runs as plain callbacks: parse, coerce and queue at once, then one callback on the
batch future encodes and writes the response.

The steps are those of the ASGI route, shared rather than copied: the envelope's request id,
in-flight count, metrics, access log and error replies (:class:`RequestEnvelope`), and the
endpoint's version lookup, release routing, parsing, queueing, encoding, prediction log and
shadow copies (:class:`~modelport.server.endpoints.Endpoints`); the per-request deadline is the
same :class:`~modelport.server.deadlines.Deadlines` timer, started when the headers arrive, as on
the ASGI path. With API keys required, the key is checked by the same
:meth:`~modelport.server.auth.Gate.authorize`, run to completion at once when it can be (static
keys, and registry keys it has cached); a check that has to wait (a registry key not cached) sends
the request the ASGI way, as do a compressed or chunked body, ``Expect: 100-continue`` and any
other route.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any, Protocol

from starlette.requests import ClientDisconnect
from starlette.routing import compile_path

from modelport.core.errors import Unauthenticated
from modelport.server.auth import Gate, Principal
from modelport.server.cache import Results
from modelport.server.endpoints import Call, Endpoints, PredictionRoute
from modelport.server.fastpath import PathMatcher
from modelport.server.limits import BodyCheck, BodyLimits, check_body_headers
from modelport.server.middleware import CLIENT_CLOSED, RequestEnvelope, RequestInfo, error_headers, id_header


class Exchange(Protocol):
    """One HTTP request as the server's protocol hands it over, and the way to answer it."""

    def respond(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        """Write the whole response: the status line, the protocol's own headers (``Date``), ``headers``
        (which carry ``Content-Type`` and ``Content-Length``), then ``body``."""


class DirectPredictions:
    """The prediction routes the HTTP protocol may answer without ASGI.

    Args:
        endpoints: The app's handlers (their prediction steps are shared).
        envelope: The app's request envelope (ids, in-flight count, metrics, access log, errors).
        gate: The app's auth gate (checked as the ASGI guard checks it).
        limits: The body caps.
        routes: ``(path, route)`` pairs in Starlette's path syntax (``{name}``, ``{version}``).
        count_auth_failure: Called for each request refused for its key (the ASGI guard counts them too).
    """

    def __init__(
        self,
        endpoints: Endpoints,
        envelope: RequestEnvelope,
        gate: Gate,
        limits: BodyLimits,
        routes: Sequence[tuple[str, PredictionRoute]],
        count_auth_failure: Callable[[], object],
    ) -> None:
        self.count_auth_failure = count_auth_failure
        self.endpoints = endpoints
        self.envelope = envelope
        self.gate = gate
        self.limits = limits
        self._routes: PathMatcher[PredictionRoute] = PathMatcher(
            [(compile_path(path)[0], route) for path, route in routes]
        )

    def begin(
        self, exchange: Exchange, path: str, headers: list[tuple[bytes, bytes]], client: Any
    ) -> DirectCall | None:
        """Take a ``POST`` to ``path`` whose headers just arrived, or return ``None`` to leave it to ASGI.

        The returned call is fed the body with :meth:`DirectCall.body_received` (or told of a lost
        connection with :meth:`DirectCall.disconnected`); it answers through ``exchange`` exactly
        once. A request refused on its headers alone (unknown model, too large, wrong media type) is
        answered at once, and the body that follows is ignored.
        """
        matched = self._routes.match(path)
        if matched is None:
            return None
        route, params = matched
        body: BodyCheck | Exception
        try:
            body = check_body_headers(headers, self.limits, accept_csv=route.accept_csv)
        except Exception as exc:
            body = exc  # answered once the model is picked, as the ASGI route answers it
        else:
            if body.decoder is not None or not body.sized:
                return None  # a compressed or streamed body: the ASGI way reads it as it comes
        refusal: Exception | None = None
        if self.gate.enabled:
            checked = _at_once(self.gate.authorize("predict", headers, client[0] if client else "unknown"))
            if checked is None:
                return None  # the check has to wait: the ASGI way runs it again, as a task
            refusal = checked if isinstance(checked, Exception) else None
        call = DirectCall(self, exchange, route, headers, client, path)
        if refusal is None:
            call.start(params["name"], params.get("version"), body)
        else:
            if isinstance(refusal, Unauthenticated):
                self.count_auth_failure()
            call.refuse(refusal)
        return call


def _at_once(check: Coroutine[Any, Any, Principal]) -> Principal | Exception | None:
    """Run ``check`` to its end if it never has to wait: its result or error; ``None`` if it would wait.

    A check that would wait is closed; what it was waiting for (a registry lookup in a thread) is
    left to finish, its outcome retrieved so that nothing is logged as never retrieved.
    """
    try:
        waiting_for = check.send(None)
    except StopIteration as done:
        principal: Principal = done.value
        return principal
    except Exception as exc:
        return exc
    check.close()
    if isinstance(waiting_for, asyncio.Future):
        waiting_for.add_done_callback(_retrieve)
    return None


def _retrieve(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


class DirectCall:
    """One prediction request on the direct path, from its headers to its response.

    Its :meth:`cancel` is what the request's deadline calls when it passes.
    """

    __slots__ = (
        "_body",
        "_client",
        "_closed",
        "_deadline",
        "_exchange",
        "_headers",
        "_owner",
        "_path",
        "_pending",
        "_route",
        "call",
        "done",
        "info",
    )

    def __init__(
        self,
        owner: DirectPredictions,
        exchange: Exchange,
        route: PredictionRoute,
        headers: list[tuple[bytes, bytes]],
        client: Any,
        path: str,
    ) -> None:
        self._owner = owner
        self._exchange = exchange
        self._route = route
        self._headers = headers
        self._client = client
        self._path = path
        self._body: BodyCheck | None = None
        self._pending: asyncio.Future[Results] | None = None
        self._closed = False
        self.info: RequestInfo = owner.envelope.open(headers)
        self.call: Call | None = None
        self.done = False
        """Whether the response was written (or the client went away): later body bytes are ignored."""
        self._deadline = owner.endpoints.deadlines.watch(self, asyncio.get_running_loop())

    def start(self, name: str, version: str | None, body: BodyCheck | Exception) -> None:
        """Pick (and acquire) the version that answers, then refuse a body its headers already condemned.

        The order of the ASGI route: an unknown model is a 404 before a body is a 413 or 415.
        """
        try:
            call = self.call = self._owner.endpoints.begin(self.info, self._route, name, version, self._headers)
        except Exception as exc:
            self._fail(exc)
            return
        if isinstance(body, Exception):
            self._failed(call, body)
        else:
            self._body = body

    def refuse(self, exc: Exception) -> None:
        """Answer a request refused before any model was picked (a missing or wrong key)."""
        self._fail(exc)

    def body_received(self, data: bytes) -> None:
        """The whole body arrived: parse, check and queue the request."""
        if self.done:
            return
        call = self.call
        assert call is not None
        assert self._body is not None
        try:
            pending = self._owner.endpoints.submit(call, self._body.body(data))
        except Exception as exc:
            self._failed(call, exc)
            return
        future = self._pending = _future(pending)
        future.add_done_callback(self._scored)

    def disconnected(self) -> None:
        """The connection closed before the response: stop unless the model is already scoring it."""
        if not self.done and self._pending is None:
            self._stop(ClientDisconnect())

    def cancel(self) -> None:
        """The deadline passed: give up waiting (the batcher skips a cancelled request)."""
        if self.done:
            return
        if self._pending is not None:
            self._pending.cancel()  # _scored answers 504
        else:
            self._stop(TimeoutError())

    def _stop(self, exc: Exception) -> None:
        """End the request before its body was queued."""
        if self.call is not None:
            self._failed(self.call, exc)
        else:
            self._fail(exc)

    def _scored(self, future: asyncio.Future[Results]) -> None:
        try:
            self._answer(future)
        except Exception as exc:  # a fault in a step after scoring: a logged 500, never a client left waiting
            self._fail(exc)

    def _answer(self, future: asyncio.Future[Results]) -> None:
        call = self.call
        assert call is not None
        if future.cancelled():
            self._failed(call, TimeoutError() if self._deadline.expired else ClientDisconnect())
            return
        error = future.exception()
        if error is not None:
            self._failed(call, error if isinstance(error, Exception) else RuntimeError(repr(error)))
            return
        results = future.result()
        endpoints = self._owner.endpoints
        try:
            encoded = endpoints.encode(call, results)
        except Exception as exc:
            self._failed(call, exc)
            return
        self._finish()
        call.served.release()
        info = self.info
        body = encoded.body
        headers = [(b"content-type", encoded.content_type), (b"content-length", str(len(body)).encode())]
        headers += encoded.headers
        headers.append(id_header(info))
        info.status = 200
        self._exchange.respond(200, headers, body)
        self._close()
        endpoints.answered(call, results)

    def _failed(self, call: Call, exc: Exception) -> None:
        """A prediction that got as far as a version failed: release it and answer."""
        call.served.release()
        try:
            answer = self._owner.endpoints.failed(call, exc)
        except Exception as fault:  # a fault while counting the failure: answer that instead
            answer = fault
        self._fail(answer)

    def _fail(self, exc: Exception) -> None:
        """Answer ``exc`` and end the request (a fault after the answer went out is only logged)."""
        self._finish()
        info = self.info
        reply = self._owner.envelope.reply(exc, info)  # logs an unexpected error with its traceback
        if reply is not None and not info.status:
            info.status = reply.status
            self._exchange.respond(reply.status, error_headers(reply, info), reply.body)
        if not self._closed:
            self._close()

    def _finish(self) -> None:
        self.done = True
        self._deadline.clear()

    def _close(self) -> None:
        self._closed = True
        self._owner.envelope.close(self.info, self.info.status or CLIENT_CLOSED, "POST", self._path, self._client)


def _future(pending: Awaitable[Results]) -> asyncio.Future[Results]:
    """The batch future itself, or a task for the slower paths (the cache, coercion in a thread)."""
    if isinstance(pending, asyncio.Future):
        return pending
    return asyncio.ensure_future(pending)
