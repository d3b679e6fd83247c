"""The route table: every path, its handler and its auth policy, in one place.

Each route's endpoint is a :class:`Guarded` wrapper that carries the route's :data:`Policy` and
checks it before the handler runs, so a route cannot exist without a policy; a test walks
``app.routes`` and fails on any endpoint that is not guarded. The same table generates the OpenAPI
document (:mod:`modelport.server.openapi`). Routes mounted later by the composition root (e.g. the
monitoring dashboard) go through :func:`guard` too.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from starlette.routing import BaseRoute, Mount, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from modelport.core.errors import Unauthenticated
from modelport.server.auth import POLICIES, Gate, Policy
from modelport.server.metrics import ServerMetrics


@dataclass(frozen=True, slots=True)
class RouteSpec:
    """One route.

    Attributes:
        path: Starlette path (``{name}`` parameters).
        method: HTTP method.
        handler: Attribute of :class:`Endpoints` that answers it.
        policy: Who may call it.
        summary: One line for the docs.
        tag: Docs group.
        request: Name of the request-body schema in the OpenAPI components, if any.
        response: Name of the 200 response schema.
    """

    path: str
    method: str
    handler: str
    policy: Policy
    summary: str
    tag: str
    request: str | None = None
    response: str | None = None


_V2 = "/v2/models/{name}"
_V2V = "/v2/models/{name}/versions/{version}"

ROUTES: tuple[RouteSpec, ...] = (
    RouteSpec("/v2/health/live", "GET", "live", "public", "Liveness: the process answers.", "health", None, "Live"),
    RouteSpec(
        "/v2/health/ready",
        "GET",
        "ready",
        "public",
        "Readiness: every requested model serves.",
        "health",
        None,
        "Ready",
    ),
    RouteSpec("/ping", "GET", "ping", "public", "MLflow health check (same as readiness).", "health", None, "Ready"),
    RouteSpec("/v2", "GET", "server_metadata", "predict", "Server metadata.", "metadata", None, "ServerMetadata"),
    RouteSpec(
        _V2, "GET", "model_metadata", "predict", "Model metadata (default version).", "metadata", None, "ModelMetadata"
    ),
    RouteSpec(
        _V2V,
        "GET",
        "model_metadata",
        "predict",
        "Model metadata of one version (number or alias).",
        "metadata",
        None,
        "ModelMetadata",
    ),
    RouteSpec(
        f"{_V2}/ready",
        "GET",
        "model_ready",
        "predict",
        "Model readiness (503 with the reason).",
        "health",
        None,
        "ModelReady",
    ),
    RouteSpec(
        f"{_V2V}/ready", "GET", "model_ready", "predict", "Model version readiness.", "health", None, "ModelReady"
    ),
    RouteSpec(
        f"{_V2}/infer",
        "POST",
        "v2_infer",
        "predict",
        "Open Inference Protocol V2 inference.",
        "inference",
        "InferenceRequest",
        "InferenceResponse",
    ),
    RouteSpec(
        f"{_V2V}/infer",
        "POST",
        "v2_infer",
        "predict",
        "V2 inference on one version.",
        "inference",
        "InferenceRequest",
        "InferenceResponse",
    ),
    RouteSpec(
        "/v1/models/{name}:predict",
        "POST",
        "v1_predict",
        "predict",
        "V1 / TF-Serving style prediction.",
        "inference",
        "V1Request",
        "V1Response",
    ),
    RouteSpec(
        "/v1/models/{name}/versions/{version}:predict",
        "POST",
        "v1_predict",
        "predict",
        "V1 prediction on one version.",
        "inference",
        "V1Request",
        "V1Response",
    ),
    RouteSpec(
        "/invocations",
        "POST",
        "invocations",
        "predict",
        "MLflow scoring-server compatible prediction.",
        "inference",
        "MlflowRequest",
        "MlflowResponse",
    ),
    RouteSpec("/metrics", "GET", "metrics", "predict", "Prometheus metrics.", "operations", None, None),
    RouteSpec("/openapi.json", "GET", "openapi", "predict", "This OpenAPI document.", "operations", None, None),
    RouteSpec("/docs", "GET", "docs", "predict", "Interactive API documentation.", "operations", None, None),
    RouteSpec(
        "/v2/repository/index",
        "POST",
        "repository_index",
        "admin",
        "Model repository index.",
        "repository",
        "RepositoryIndexRequest",
        "RepositoryIndex",
    ),
    RouteSpec(
        "/v2/repository/models/{name}/load",
        "POST",
        "repository_load",
        "admin",
        "Load (or reload) a model.",
        "repository",
        None,
        "RepositoryLoad",
    ),
    RouteSpec(
        "/v2/repository/models/{name}/unload",
        "POST",
        "repository_unload",
        "admin",
        "Unload a model after in-flight requests.",
        "repository",
        None,
        "RepositoryUnload",
    ),
)


class Guarded:
    """An ASGI endpoint that checks its route's policy first.

    Args:
        handler: The endpoint.
        policy: Who may call it.
        gate: The app's authentication gate.
        metrics: Counts authentication failures.
    """

    def __init__(self, handler: ASGIApp, policy: Policy, gate: Gate, metrics: ServerMetrics) -> None:
        if policy not in POLICIES:
            raise ValueError(f"unknown auth policy {policy!r}")
        self.handler = handler
        self.policy = policy
        self.gate = gate
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.policy != "public":
            client = scope.get("client")
            try:
                await self.gate.authorize(self.policy, scope["headers"], client[0] if client else "unknown")
            except Unauthenticated:
                self.metrics.auth_failures.inc()
                raise
        await self.handler(scope, receive, send)


def guard(app: ASGIApp, policy: Policy, gate: Gate, metrics: ServerMetrics) -> Guarded:
    """Wrap any ASGI app (e.g. a mounted dashboard) with a policy."""
    return Guarded(app, policy, gate, metrics)


def guard_route(route: BaseRoute, policy: Policy, gate: Gate, metrics: ServerMetrics) -> BaseRoute:
    """A copy of ``route`` (a :class:`Route` or :class:`Mount` from another layer) guarded by ``policy``.

    Raises:
        TypeError: ``route`` is neither a Route nor a Mount.
    """
    if isinstance(route, Route):
        return Route(route.path, Guarded(route.app, policy, gate, metrics), methods=route.methods, name=route.name)
    if isinstance(route, Mount):
        return Mount(route.path, app=Guarded(route.app, policy, gate, metrics), name=route.name)
    raise TypeError(f"cannot guard a {type(route).__name__}")


def build_routes(
    handlers: Mapping[str, ASGIApp], gate: Gate, metrics: ServerMetrics, specs: tuple[RouteSpec, ...] = ROUTES
) -> list[BaseRoute]:
    """The Starlette routes of ``specs``, each guarded by its policy.

    Raises:
        KeyError: A spec names a handler missing from ``handlers``.
    """
    return [
        Route(spec.path, Guarded(handlers[spec.handler], spec.policy, gate, metrics), methods=[spec.method])
        for spec in specs
    ]
