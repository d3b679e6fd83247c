"""The route table: every path, its handler and its auth policy, in one place.

Each route's endpoint is a :class:`Guarded` wrapper that carries the route's :data:`Policy` and
checks it before the handler runs, so a route cannot exist without a policy; a test walks
``app.routes`` and fails on any endpoint that is not guarded. The same table generates the OpenAPI
document (:mod:`modelport.server.openapi`). Routes mounted later by the composition root (e.g. the
monitoring dashboard) go through :func:`guard` too; one mounted as a :class:`SignInMount` (the
dashboard) is guarded by :class:`SignInGuarded`, which adds the browser sign-in of
:mod:`modelport.server.signin`. Prediction routes come first: the router tries routes in order.
"""

from __future__ import annotations

from collections.abc import Awaitable, Mapping
from dataclasses import dataclass

from starlette.routing import BaseRoute, Mount, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from modelport.core.errors import Unauthenticated
from modelport.server.auth import POLICIES, Gate, Policy
from modelport.server.metrics import ServerMetrics
from modelport.server.signin import READ_ONLY, SignIn, cookie_token, login_redirect, page_of, wants_html


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

_INFER = ("inference", "InferenceRequest", "InferenceResponse")
_V1 = ("inference", "V1Request", "V1Response")


def _route(
    method: str, path: str, handler: str, policy: Policy, summary: str, tag: str, *schemas: str | None
) -> RouteSpec:
    request, response = (*schemas, None, None)[:2]
    return RouteSpec(path, method, handler, policy, summary, tag, request, response)


# fmt: off
ROUTES: tuple[RouteSpec, ...] = (
    # prediction first: the router tries routes in order
    _route("POST", f"{_V2}/infer", "v2_infer", "predict", "Open Inference Protocol V2 inference.", *_INFER),
    _route("POST", f"{_V2V}/infer", "v2_infer", "predict", "V2 inference on one version (number or alias).", *_INFER),
    _route("POST", "/v1/models/{name}:predict", "v1_predict", "predict", "V1 / TF-Serving style prediction.", *_V1),
    _route("POST", "/v1/models/{name}/versions/{version}:predict", "v1_predict", "predict", "V1 on one version.", *_V1),
    _route("POST", "/invocations", "invocations", "predict", "MLflow scoring-server compatible prediction.",
           "inference", "MlflowRequest", "MlflowResponse"),
    _route("GET", "/v2/health/live", "live", "public", "Liveness: the process answers.", "health", None, "Live"),
    _route("GET", "/v2/health/ready", "ready", "public", "Readiness: every requested model serves.", "health",
           None, "Ready"),
    _route("GET", "/ping", "ping", "public", "MLflow health check (same as readiness).", "health", None, "Ready"),
    _route("GET", "/", "v1_live", "public", "KServe V1 liveness: the process answers.", "health", None, "V1Live"),
    _route("GET", "/v2", "server_metadata", "predict", "Server metadata.", "metadata", None, "ServerMetadata"),
    _route("GET", _V2, "model_metadata", "predict", "Model metadata (default version).", "metadata", None,
           "ModelMetadata"),
    _route("GET", _V2V, "model_metadata", "predict", "Model metadata of one version.", "metadata", None,
           "ModelMetadata"),
    _route("GET", f"{_V2}/ready", "model_ready", "predict", "Model readiness (503 with the reason).", "health",
           None, "ModelReady"),
    _route("GET", f"{_V2V}/ready", "model_ready", "predict", "Model version readiness.", "health", None, "ModelReady"),
    _route("GET", "/v1/models/{name}", "v1_model_ready", "predict", "KServe V1 model status (503 with the reason).",
           "health", None, "ModelReady"),
    _route("GET", "/metrics", "metrics", "predict", "Prometheus metrics.", "operations"),
    _route("GET", "/openapi.json", "openapi", "predict", "This OpenAPI document.", "operations"),
    _route("GET", "/docs", "docs", "predict", "Interactive API documentation.", "operations"),
    _route("POST", "/v2/repository/index", "repository_index", "admin", "Model repository index.", "repository",
           "RepositoryIndexRequest", "RepositoryIndex"),
    _route("POST", "/v2/repository/models/{name}/load", "repository_load", "admin", "Load (or reload) a model.",
           "repository", None, "RepositoryLoad"),
    _route("POST", "/v2/repository/models/{name}/unload", "repository_unload", "admin",
           "Unload a model once its in-flight requests finish.", "repository", None, "RepositoryUnload"),
)
# fmt: on


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

    @property
    def routes(self) -> list[BaseRoute]:
        """The wrapped app's routes (so ``url_for`` still reaches into a guarded mount)."""
        routes: list[BaseRoute] = getattr(self.handler, "routes", [])
        return routes

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        policy = self.policy
        if policy != "public" and (policy != "predict" or self.gate.enabled):  # else the gate lets anyone in
            return self._authorized(scope, receive, send)
        return self.handler(scope, receive, send)  # the handler's own awaitable: no frame of ours per request

    async def _authorized(self, scope: Scope, receive: Receive, send: Send) -> None:
        client = scope.get("client")
        try:
            await self.gate.authorize(self.policy, scope["headers"], client[0] if client else "unknown")
        except Unauthenticated:
            self.metrics.auth_failures.inc()
            raise
        await self.handler(scope, receive, send)


class SignInMount(Mount):
    """A :class:`Mount` of browser pages (the dashboard): once guarded, it serves ``login`` and ``logout``
    and accepts the sign-in cookie on GET and HEAD (see :mod:`modelport.server.signin`)."""

    cookie_auth = True


class SignInGuarded(Guarded):
    """A :class:`Guarded` mount that also takes the key from the sign-in cookie, on GET/HEAD only.

    Its ``login`` and ``logout`` pages are public. A browser (``Accept: text/html``) refused with 401
    on a GET/HEAD is sent to the login page (303); other clients keep the JSON 401.
    """

    def __init__(self, handler: ASGIApp, policy: Policy, gate: Gate, metrics: ServerMetrics) -> None:
        super().__init__(handler, policy, gate, metrics)
        self.sign_in = SignIn(gate, metrics, policy)

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        page = page_of(scope) if scope["type"] == "http" else None
        if page is not None:
            return self.sign_in(page, scope, receive, send)
        return super().__call__(scope, receive, send)

    async def _authorized(self, scope: Scope, receive: Receive, send: Send) -> None:
        client = scope.get("client")
        headers = scope["headers"]
        read_only = scope.get("method") in READ_ONLY
        try:
            token = cookie_token(headers) if read_only else None
            await self.gate.authorize(self.policy, headers, client[0] if client else "unknown", token=token)
        except Unauthenticated:
            self.metrics.auth_failures.inc()
            if not (read_only and wants_html(headers)):
                raise
            await login_redirect(scope)(scope, receive, send)
            return
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
        kind = SignInGuarded if getattr(route, "cookie_auth", False) else Guarded
        return Mount(route.path, app=kind(route.app, policy, gate, metrics), name=route.name)
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
