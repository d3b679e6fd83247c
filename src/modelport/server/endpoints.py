"""The handlers behind every route, as plain ASGI callables (no per-request pydantic or pandas).

Prediction routes share one path: look the model up (acquiring the version so a hot swap cannot
unload it mid-request), read the body within its limits, parse it per protocol, answer from the
cache or coerce and score through the model's micro-batcher, encode with orjson, hand the record
to the prediction log, release the version. The per-request deadline covers reading, waiting and
scoring; 503 (full queue) carries ``Retry-After``. A version-less request (or one naming an alias)
for a model whose alias has an active release is routed by the release's router (primary or
canary, sticky by header); once the primary answered, a copy goes to the release's shadow queue
(never waited for).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, NamedTuple

import numpy as np
from starlette.types import Receive, Scope, Send

from modelport.bundle.flavors.base import ModelInput
from modelport.core.errors import BadRequest, NotFound, Overloaded, ServiceUnavailable
from modelport.server.cache import CacheUnavailableError, Results, cache_key
from modelport.server.deadlines import Deadlines
from modelport.server.errors import JSON_TYPE, RetryLater
from modelport.server.limits import Body, parse_json, read_body
from modelport.server.metrics import CONTENT_TYPE as METRICS_TYPE
from modelport.server.middleware import RequestInfo, id_header, request_info
from modelport.server.protocols import mlflow, v1, v2
from modelport.server.protocols.tensors import InferenceRequest, dumps
from modelport.server.release_routing import ActiveRelease, ShadowCopy, is_failure
from modelport.server.releases import Answer
from modelport.server.served import ServedVersion
from modelport.server.state import ServerState

logger = logging.getLogger("modelport.server")

Handler = Callable[[Scope, Receive, Send], Awaitable[None]]
THREAD_COERCE_BYTES = 256 * 1024
"""Bodies larger than this are coerced in a worker thread, off the event loop."""

_JSON = JSON_TYPE.encode()


async def send_body(
    send: Send,
    status: int,
    body: bytes,
    *,
    content_type: bytes = _JSON,
    headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    """Send a complete response."""
    all_headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
    if headers:
        all_headers.extend(headers)
    await send({"type": "http.response.start", "status": status, "headers": all_headers})
    await send({"type": "http.response.body", "body": body})


async def send_json(send: Send, doc: Any, status: int = 200) -> None:
    """Send ``doc`` as JSON."""
    await send_body(send, status, dumps(doc))


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1e3


def _agreement(primary: Results, shadow: Results) -> list[bool]:
    """Per row, whether the shadow's first shared output (``predict`` first) equals the primary's."""
    shared = [name for name in ("predict", *primary) if name in primary and name in shadow]
    if not shared:
        return []
    a, b = np.asarray(primary[shared[0]]), np.asarray(shadow[shared[0]])
    if a.shape != b.shape or a.ndim == 0:
        return [False] * (len(a) if a.ndim else 1)
    numeric = a.dtype.kind in "fc" and b.dtype.kind in "fc"
    same = np.isclose(a, b, rtol=1e-6, atol=1e-9) if numeric else a == b
    rows = same.reshape(len(same), -1).all(axis=1) if same.ndim else np.asarray([same])
    return [bool(x) for x in rows]


def _path(scope: Scope, name: str) -> str:
    value: str = scope["path_params"][name]
    return value


def _version(scope: Scope) -> str | None:
    value: str | None = scope["path_params"].get("version")
    return value


class Encoded:
    """A response body with its extra headers."""

    __slots__ = ("body", "content_type", "headers")

    def __init__(self, body: bytes, content_type: bytes = _JSON, headers: list[tuple[bytes, bytes]] | None = None):
        self.body = body
        self.content_type = content_type
        self.headers = headers or []


Parse = Callable[[Body, ServedVersion], InferenceRequest]
Encode = Callable[[InferenceRequest, Results, ServedVersion], Encoded]


class PredictionRoute(NamedTuple):
    """How one prediction route reads requests and writes answers.

    Attributes:
        route: Its name in metrics and logs (``v2_infer``, ``v1_predict``, ``invocations``).
        parse: Body to :class:`InferenceRequest`.
        encode: Results to the response body.
        accept_csv: Whether the route also reads ``text/csv``.
        version_headers: Whether the server's version headers are added (MLflow's encoder always adds them).
    """

    route: str
    parse: Parse
    encode: Encode
    accept_csv: bool = False
    version_headers: bool = True


class Call:
    """One prediction request on its way through :class:`Endpoints` (over ASGI, or :mod:`~modelport.server.direct`)."""

    __slots__ = ("answer", "info", "outputs", "release", "request", "route", "served", "size")

    def __init__(
        self,
        info: RequestInfo,
        route: PredictionRoute,
        served: ServedVersion,
        release: ActiveRelease | None,
        answer: Answer,
    ) -> None:
        self.info = info
        self.route = route
        self.served = served
        self.release = release
        self.answer = answer
        self.request: InferenceRequest | None = None
        self.outputs: tuple[str, ...] = ()
        self.size = 0


def _parse_v2(body: Body, served: ServedVersion, max_depth: int) -> InferenceRequest:
    return v2.parse_infer(body, served.signature, max_depth)


def _encode_v2(request: InferenceRequest, results: Results, served: ServedVersion) -> Encoded:
    body, json_length = served.v2_encoder.encode(request, results)
    if json_length is None:
        return Encoded(body)
    return Encoded(body, b"application/octet-stream", [(b"inference-header-content-length", str(json_length).encode())])


def _encode_v1(request: InferenceRequest, results: Results, served: ServedVersion) -> Encoded:
    return Encoded(dumps(v1.encode_predict(results, model=served.name, version=served.version, classes=served.classes)))


def _encode_mlflow(request: InferenceRequest, results: Results, served: ServedVersion) -> Encoded:
    return Encoded(dumps(mlflow.encode_invocations(results)), headers=list(served.answer_headers))


class Endpoints:
    """Every handler of one app.

    Args:
        state: The app's parts.
    """

    def __init__(self, state: ServerState) -> None:
        self.state = state
        self.config = state.config
        depth = state.config.max_json_depth
        self.deadlines = Deadlines(state.config.request_timeout_s)
        """The per-request timeouts of this app (the direct path watches its requests with them too)."""
        self.v2_route = PredictionRoute("v2_infer", lambda body, served: _parse_v2(body, served, depth), _encode_v2)
        self.v1_route = PredictionRoute(
            "v1_predict",
            lambda body, served: v1.parse_predict(parse_json(body.data, depth), served.signature),
            _encode_v1,
        )
        self.mlflow_route = PredictionRoute(
            "invocations",
            lambda body, served: (
                mlflow.parse_csv(body.data, served.signature)
                if body.csv
                else mlflow.parse_invocations(parse_json(body.data, depth), served.signature)
            ),
            _encode_mlflow,
            accept_csv=True,
            version_headers=False,
        )

    # --- health and metadata -------------------------------------------------------------------

    async def live(self, scope: Scope, receive: Receive, send: Send) -> None:
        """``GET /v2/health/live``: the process answers."""
        request_info(scope).route = "health"
        await send_json(send, {"live": True})

    async def ready(self, scope: Scope, receive: Receive, send: Send) -> None:
        """``GET /v2/health/ready``: 200 when every requested model serves, else 503 with the reasons."""
        request_info(scope).route = "health"
        ready, reasons = self.state.manager.readiness()
        if not ready:
            raise ServiceUnavailable(f"Not ready: {'; '.join(reasons)}.", hint="See /v2/repository/index and the log.")
        await send_json(send, {"ready": True})

    async def ping(self, scope: Scope, receive: Receive, send: Send) -> None:
        """``GET /ping``: MLflow's health check (same as ``/v2/health/ready``)."""
        await self.ready(scope, receive, send)

    async def server_metadata(self, scope: Scope, receive: Receive, send: Send) -> None:
        """``GET /v2``: server name, version and protocol extensions."""
        request_info(scope).route = "metadata"
        doc = {
            "name": "modelport",
            "version": self.state.version,
            "extensions": ["model_repository", "binary_tensor_data"],
        }
        await send_json(send, doc)

    async def model_metadata(self, scope: Scope, receive: Receive, send: Send) -> None:
        """``GET /v2/models/{name}[/versions/{version}]``: inputs, outputs, versions."""
        info = request_info(scope)
        info.route = "metadata"
        name = _path(scope, "name")
        served = self.state.manager.lookup(name, _version(scope))
        try:
            info.model, info.version = served.name, served.version
            doc = v2.model_metadata(name, self.state.manager.versions(name), served.signature, served.flavor)
            doc["serving"] = {"version": str(served.version), "runtime": served.note}
        finally:
            served.release()
        await send_json(send, doc)

    async def model_ready(self, scope: Scope, receive: Receive, send: Send) -> None:
        """``GET /v2/models/{name}[/versions/{version}]/ready``: 200, or 503 with the reason."""
        info = request_info(scope)
        info.route = "health"
        name = _path(scope, "name")
        ready, reason = self.state.manager.model_readiness(name, _version(scope))
        info.model = name  # known to the server by now: metric labels never take unchecked names
        if not ready:
            raise ServiceUnavailable(f"Model {name!r} is not ready: {reason}.", hint="See the server log.")
        await send_json(send, {"name": name, "ready": True})

    async def v1_model_ready(self, scope: Scope, receive: Receive, send: Send) -> None:
        """``GET /v1/models/{name}``: KServe V1 model status, answered as ``model_ready`` answers.

        ``{"name": ..., "ready": true}``, 503 with the reason, or 404 naming the served models: the
        shapes KServe's own server gives, and what its SDK's V1 ``is_model_ready`` reads.
        """
        await self.model_ready(scope, receive, send)

    async def v1_live(self, scope: Scope, receive: Receive, send: Send) -> None:
        """``GET /``: KServe V1 liveness, ``{"status": "alive"}`` as KServe's own server answers."""
        request_info(scope).route = "health"
        await send_json(send, {"status": "alive"})

    async def metrics(self, scope: Scope, receive: Receive, send: Send) -> None:
        """``GET /metrics``: Prometheus text exposition."""
        request_info(scope).route = "metrics"
        await send_body(send, 200, self.state.metrics.render(), content_type=METRICS_TYPE.encode())

    # --- prediction ----------------------------------------------------------------------------

    def v2_infer(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        """``POST /v2/models/{name}[/versions/{version}]/infer`` (returns the coroutine: one frame less per request)."""
        return self._predict(scope, receive, send, self.v2_route, _path(scope, "name"))

    def v1_predict(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        """``POST /v1/models/{name}[/versions/{version}]:predict``."""
        return self._predict(scope, receive, send, self.v1_route, _path(scope, "name"))

    async def invocations(self, scope: Scope, receive: Receive, send: Send) -> None:
        """``POST /invocations`` (MLflow, JSON or ``text/csv``): the only served model, or ``default_model``."""
        name = self.config.default_model or self.state.manager.only_model()
        if name is None:
            request_info(scope).route = "invocations"
            served = ", ".join(self.state.manager.names()) or "none"
            raise BadRequest(
                f"/invocations needs one model, and this server serves several ({served}).",
                hint="Start the server with default_model set, or call /v2/models/{name}/infer.",
            )
        await self._predict(scope, receive, send, self.mlflow_route, name)

    async def _predict(self, scope: Scope, receive: Receive, send: Send, route: PredictionRoute, name: str) -> None:
        info = request_info(scope)
        headers = scope["headers"]
        call = self.begin(info, route, name, _version(scope), headers)
        try:
            with self.deadlines.start():
                body = await read_body(receive, headers, self.state.limits, accept_csv=route.accept_csv)
                results = await self.submit(call, body)
            encoded = self.encode(call, results)
        except Exception as exc:
            raise self.failed(call, exc)  # noqa: B904 (failed() chains what it replaces)
        finally:
            call.served.release()
        if info.direct:
            encoded.headers.append(id_header(info))
            info.status = 200
        await send_body(send, 200, encoded.body, content_type=encoded.content_type, headers=encoded.headers)
        self.answered(call, results)

    # --- the steps of a prediction, shared with the direct path (modelport.server.direct) -----

    def begin(
        self,
        info: RequestInfo,
        route: PredictionRoute,
        name: str,
        version: str | None,
        headers: list[tuple[bytes, bytes]],
    ) -> Call:
        """Pick (and acquire) the version that answers; the caller releases ``call.served`` when done.

        Raises:
            NotFound: No such model or version (the message lists what is served).
            ServiceUnavailable: The model is not loaded (yet).
        """
        info.route = route.route
        served, release, answer = self._answering(name, version, headers)
        info.model, info.version = served.name, served.version
        return Call(info, route, served, release, answer)

    def submit(self, call: Call, body: Body) -> Awaitable[Results]:
        """Parse, check and queue the request; await the result (the usual case is queued inline, at once).

        Raises:
            ModelportError: A bad request (parse, outputs, coercion) or a full queue.
        """
        served = call.served
        request = call.request = call.route.parse(body, served)
        outputs = call.outputs = served.check_outputs(request.outputs)
        call.size = len(body.data)
        if self.state.cache is None and call.size < THREAD_COERCE_BYTES:
            model_input, checked = served.coerce_for_batch(request.data)
            return served.submit(model_input, outputs, checked)
        return self._score(served, request, outputs, call.size)

    def encode(self, call: Call, results: Results) -> Encoded:
        """The response to ``results``, with the version headers where the route adds them."""
        assert call.request is not None
        encoded = call.route.encode(call.request, results, call.served)
        if call.route.version_headers and self.config.version_headers:
            encoded.headers.extend(call.served.answer_headers)
        return encoded

    def failed(self, call: Call, exc: Exception) -> Exception:
        """Count, log and route-observe a failed prediction; return what to raise (``exc``, or the 503 it becomes)."""
        served = call.served
        self._count_refusal(served, exc)
        self._log(call, None, exc)
        routing = self.state.releases
        if call.release is not None and routing is not None:
            routing.observe(call.release, served.version, call.answer, _ms(call.info.started), not is_failure(exc))
        if isinstance(exc, Overloaded) and not isinstance(exc, RetryLater):
            retry = RetryLater(exc.message, hint=exc.hint, retry_after_s=self.config.retry_after_s)
            retry.__cause__ = exc
            return retry
        return exc

    def answered(self, call: Call, results: Results) -> None:
        """After the answer went out: the prediction log, the release's statistics and its shadow copy."""
        self._log(call, results, None)
        routing = self.state.releases
        release = call.release
        if release is not None and routing is not None:
            routing.observe(release, call.served.version, call.answer, _ms(call.info.started), True)
            if release.shadow is not None:
                assert call.request is not None
                release.shadow.offer(
                    ShadowCopy(call.info.request_id, call.request.data, call.outputs, results, call.size)
                )

    def _answering(
        self, name: str, version: str | None, headers: list[tuple[bytes, bytes]]
    ) -> tuple[ServedVersion, ActiveRelease | None, Answer]:
        """The version that answers (acquired), the release routing it (if any) and its role."""
        routing = self.state.releases
        if routing is not None and (version is None or not version.isdigit()):
            release = routing.lookup(name, version or "production")
            if release is not None:
                served, answer = self._route(release, name, version, headers)
                return served, release, answer
        return self.state.manager.lookup(name, version), None, "primary"

    def _route(
        self, release: ActiveRelease, name: str, alias: str | None, headers: list[tuple[bytes, bytes]]
    ) -> tuple[ServedVersion, Answer]:
        """The version the release's router picks (the alias's version while the canary is not loaded yet)."""
        version, answer = release.router.choose(headers)
        if answer == "canary":
            try:
                return self.state.manager.lookup(name, str(version)), answer
            except (NotFound, ServiceUnavailable):
                pass
        return self.state.manager.lookup(name, alias), "primary"

    async def run_shadow(self, release: ActiveRelease, copy: ShadowCopy) -> None:
        """Score ``copy`` on the release's shadow version, log it (route ``shadow``) and compare it."""
        shadow_version = release.router.shadow_version
        routing = self.state.releases
        if shadow_version is None or routing is None:
            return
        served = self.state.manager.lookup(release.model, str(shadow_version))
        started = time.perf_counter()
        results: Results | None = None
        error: BaseException | None = None
        try:
            model_input = await self._coerce(served, copy.data, copy.size)
            results = await served.submit(model_input, copy.outputs)
        except Exception as exc:
            error = exc
            raise
        finally:
            served.release()
            routing.observe(release, served.version, "shadow", _ms(started), error is None)
            predlog = self.state.predlog
            if predlog is not None:
                predlog.log(
                    request_id=copy.request_id,
                    served=served,
                    inputs=copy.data,
                    outputs=results,
                    latency_ms=_ms(started),
                    error=error,
                    route="shadow",
                )
        assert results is not None
        for agreed in _agreement(copy.primary, results):
            release.stats.record_comparison(served.version, "shadow", agreed)

    async def _score(
        self, served: ServedVersion, request: InferenceRequest, outputs: tuple[str, ...], size: int
    ) -> Results:
        key: str | None = None
        cache = self.state.cache
        if cache is not None and self.config.cache_enabled_for(served.name):
            key = cache_key(served.name, served.version, outputs, request.data)
            try:
                hit = await cache.get(key)
            except CacheUnavailableError:
                self.state.metrics.count_cache(served.name, "error")
                hit, key = None, None
            if hit is not None:
                self.state.metrics.count_cache(served.name, "hit")
                return hit
            if key is not None:
                self.state.metrics.count_cache(served.name, "miss")
        model_input = await self._coerce(served, request.data, size)
        results = await served.submit(model_input, outputs)
        if key is not None and cache is not None:
            await cache.set(key, results)
        return results

    async def _coerce(self, served: ServedVersion, data: Any, size: int) -> ModelInput:
        if size < THREAD_COERCE_BYTES:
            return served.coerce(data)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.state.inference_executor, served.coerce, data)

    def _count_refusal(self, served: ServedVersion, exc: BaseException) -> None:
        if isinstance(exc, Overloaded):
            self.state.metrics.count_refused(served.name, "overloaded")
        elif isinstance(exc, TimeoutError):
            self.state.metrics.count_refused(served.name, "timeout")

    def _log(self, call: Call, results: Results | None, error: BaseException | None) -> None:
        predlog = self.state.predlog
        if predlog is not None:
            predlog.log(
                request_id=call.info.request_id,
                served=call.served,
                inputs=None if call.request is None else call.request.data,
                outputs=results,
                latency_ms=_ms(call.info.started),
                error=error,
                route=call.answer,
            )

    # --- the repository extension --------------------------------------------------------------

    async def _optional_json(self, scope: Scope, receive: Receive) -> dict[str, Any]:
        body = await read_body(receive, scope["headers"], self.state.limits)
        if not body.data.strip():
            return {}
        doc = parse_json(body.data, self.config.max_json_depth)
        if not isinstance(doc, dict):
            raise BadRequest("The request body must be a JSON object.", hint="Send {} or omit the body.")
        return doc

    async def repository_index(self, scope: Scope, receive: Receive, send: Send) -> None:
        """``POST /v2/repository/index``: every model version and its state (``{"ready": true}`` filters)."""
        request_info(scope).route = "repository"
        doc = await self._optional_json(scope, receive)
        rows = self.state.manager.index()
        if doc.get("ready") is True:
            rows = [r for r in rows if r["state"] == "READY"]
        await send_json(send, rows)

    async def repository_load(self, scope: Scope, receive: Receive, send: Send) -> None:
        """``POST /v2/repository/models/{name}/load``: (re)load a model from the registry."""
        info = request_info(scope)
        info.route = "repository"
        name = _path(scope, "name")
        await self._optional_json(scope, receive)
        rows = await self.state.manager.load_model(name)
        info.model = name
        await send_json(send, {"name": name, "loaded": True, "versions": rows})

    async def repository_unload(self, scope: Scope, receive: Receive, send: Send) -> None:
        """``POST /v2/repository/models/{name}/unload``: stop serving a model once in-flight requests finish."""
        info = request_info(scope)
        info.route = "repository"
        name = _path(scope, "name")
        await self._optional_json(scope, receive)
        await self.state.manager.unload_model(name)
        info.model = name
        await send_json(send, {"name": name, "unloaded": True})
