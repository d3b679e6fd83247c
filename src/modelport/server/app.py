"""``create_app``: assemble the server's ASGI app from a :class:`ServerConfig` and injected parts.

The composition root (``modelport.api``) passes the registry, the optional fast-path factory
(``accelerate``) and, when it wants its own, the prediction-log writer; everything else is built
here from the config. The returned Starlette app loads its models in its lifespan, so nothing is
loaded, connected or started until a server (or a test client) runs it.

Example:
    >>> app = create_app(ServerConfig(models=("./churn-bundle",)), registry=None)  # doctest: +SKIP
    >>> uvicorn.run(app)  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute
from starlette.types import Receive, Scope, Send

from modelport.core.errors import ConfigError
from modelport.core.refs import ModelRef
from modelport.registry.registry import Registry
from modelport.runtime.predlog import PredictionLogWriter
from modelport.runtime.redaction import Redactor
from modelport.server.auth import Authenticator, FailureLimiter, Gate, Policy, StaticKeys
from modelport.server.config import ServerConfig
from modelport.server.direct import DirectPredictions
from modelport.server.endpoints import Endpoints
from modelport.server.errors import JSON_TYPE, translate
from modelport.server.fastpath import FastPath
from modelport.server.loading import Accelerate, BundleLoader, VersionLoader, default_loader
from modelport.server.manager import ModelManager
from modelport.server.metrics import ServerMetrics
from modelport.server.middleware import RequestEnvelope, request_info
from modelport.server.observer import MetricsObserver
from modelport.server.openapi import ApiDocs
from modelport.server.release_routing import ReleaseRouting, ReleaseSettings, clearance_check
from modelport.server.routes import ROUTES, build_routes, guard_route
from modelport.server.served import BatchSettings
from modelport.server.state import ServerState


def _check_sources(config: ServerConfig, registry: Registry | None) -> None:
    if registry is not None:
        return
    if not config.models:
        raise ConfigError(
            "Nothing to serve: no model references and no registry.",
            hint="Pass bundle folders or registry references (name, name:3, name@alias) with a registry.",
        )
    for text in config.models:
        if not ModelRef.parse(text).is_path:
            raise ConfigError(
                f"Cannot serve {text!r} without a registry.",
                hint="Give a bundle folder path (e.g. ./churn-bundle), or start the server with a registry.",
            )


class ModelportApp(Starlette):
    """The Starlette app, with prediction requests taken on a shorter path.

    A request :class:`FastPath` matches runs in the :class:`RequestEnvelope` straight away;
    everything else goes through Starlette's middleware stack (the same envelope) and router.
    """

    fast_path: FastPath
    envelope: RequestEnvelope
    direct: DirectPredictions
    """What modelport's HTTP protocol answers without ASGI (see :mod:`modelport.server.direct`)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            endpoint = self.fast_path.match(scope)
            if endpoint is not None:
                scope["app"] = self
                await self.envelope.direct(scope, receive, send, endpoint)
                return
        await super().__call__(scope, receive, send)


async def _http_error(request: Request, exc: Exception) -> Response:
    if isinstance(exc, HTTPException) and exc.status_code in (404, 405):
        what = "No route matches" if exc.status_code == 404 else "Method not allowed:"
        exc = HTTPException(exc.status_code, f"{what} {request.method} {request.url.path}.", headers=exc.headers)
    reply = translate(exc, request_info(request.scope).request_id)
    headers = {k.decode(): v.decode() for k, v in reply.headers}
    return Response(reply.body, status_code=reply.status, headers=headers, media_type=JSON_TYPE)


def create_app(
    config: ServerConfig,
    *,
    registry: Registry | None,
    accelerate: Accelerate | None = None,
    prediction_log: PredictionLogWriter | None = None,
    authenticators: Sequence[Authenticator] = (),
    loader: BundleLoader | None = None,
    extra_routes: Sequence[tuple[BaseRoute, Policy]] = (),
    redactor: Redactor | None = None,
    release_settings: ReleaseSettings | None = None,
) -> Starlette:
    """Build the server app (nothing is loaded until its lifespan starts).

    Args:
        config: Server configuration.
        registry: Where registry references resolve and hot swaps are watched; ``None`` serves
            bundle folders only.
        accelerate: Returns a faster adapter for a bundle (e.g. ONNX Runtime) or ``None``.
        prediction_log: Writer for the prediction log; by default one is built when
            ``config.prediction_log_dir`` is set. The app starts and stops it.
        authenticators: Extra key checkers (e.g. keys stored in the registry), after ``--api-key``.
            With a registry, one that has an async ``on_revision()`` method gets it called whenever
            the registry revision moves (so a revoked key stops working at the next poll).
        loader: Loads a bundle folder (default :func:`modelport.bundle.io.load_bundle`).
        redactor: Applies the models' redaction rules (keyed HMAC for ``hash``) to the prediction
            log the app builds from ``config.prediction_log_dir``.
        release_settings: Knobs of release routing (canary, shadow, rollback), active with a registry.
        extra_routes: Routes or mounts from other layers (feedback, dashboard), each with the auth
            policy it is guarded by; they are listed in the OpenAPI document too.

    Returns:
        A Starlette app; its ``state.modelport`` is the :class:`ServerState`.

    Raises:
        ConfigError: Nothing to serve, or registry references without a registry.
    """
    _check_sources(config, registry)
    metrics = ServerMetrics()
    version_loader = VersionLoader(
        registry=registry,
        loader=loader or default_loader(config.trusted_pickle),
        accelerate=accelerate,
        settings=BatchSettings(
            config.max_batch_size, config.max_batch_delay_ms, config.queue_limit, config.inline_below_ms
        ),
        inference_threads=config.inference_threads or max(2, len(config.models)),
        observer_for=lambda name: MetricsObserver(metrics, name),
        retries=config.load_retries,
        backoff_s=config.load_backoff_s,
        warmup_rows=config.warmup_rows,
    )
    manager = ModelManager(version_loader, refs=config.models, poll_interval_s=config.poll_interval_s, metrics=metrics)
    gate = Gate(
        (StaticKeys(config.api_keys), *authenticators),
        FailureLimiter(config.auth_failure_limit, config.auth_failure_window_s),
    )
    if prediction_log is None and config.prediction_log_dir is not None:
        prediction_log = PredictionLogWriter(
            config.prediction_log_dir, redactor=redactor, observer=MetricsObserver(metrics, "")
        )
    releases: ReleaseRouting | None = None
    if registry is not None:
        for authenticator in authenticators:  # keys kept in the registry drop cached answers as it moves
            hook = getattr(authenticator, "on_revision", None)
            if callable(hook):
                manager.on_revision.append(hook)
        releases = ReleaseRouting(registry, metrics=metrics, settings=release_settings)
        manager.on_revision.append(releases.refresh)
        manager.extra_versions = releases.extra_versions
        manager.clearance = clearance_check(registry)
    state = ServerState(
        config,
        manager=manager,
        gate=gate,
        metrics=metrics,
        prediction_log=prediction_log,
        releases=releases,
    )
    endpoints = Endpoints(state)
    if releases is not None:
        releases.run_shadow = endpoints.run_shadow
    docs = ApiDocs(state.version, extra=[(route, policy) for route, policy in extra_routes])
    handlers = {spec.handler: getattr(endpoints, spec.handler, None) or getattr(docs, spec.handler) for spec in ROUTES}

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await state.start()
        try:
            yield
        finally:
            await state.stop()

    routes = [
        *build_routes(handlers, gate, metrics),
        *(guard_route(route, policy, gate, metrics) for route, policy in extra_routes),
    ]
    app = ModelportApp(
        routes=routes,
        middleware=[
            Middleware(RequestEnvelope, metrics=metrics, access_log=state.access_log, in_flight=state.in_flight)
        ],
        exception_handlers={HTTPException: _http_error},
        lifespan=lifespan,
    )
    app.fast_path = FastPath(routes)
    app.envelope = RequestEnvelope(app.router, metrics=metrics, access_log=state.access_log, in_flight=state.in_flight)
    direct_routes = {"v2_infer": endpoints.v2_route, "v1_predict": endpoints.v1_route}
    app.direct = DirectPredictions(
        endpoints,
        app.envelope,
        gate,
        state.limits,
        [(spec.path, direct_routes[spec.handler]) for spec in ROUTES if spec.handler in direct_routes],
        metrics.auth_failures.inc,
    )
    app.state.modelport = state
    return app
