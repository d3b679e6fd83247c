"""``FastPath``: prediction requests skip Starlette's router and exception middleware.

A pure-ASGI middleware placed right inside :class:`~modelport.server.middleware.RequestEnvelope`:
a ``POST`` whose path matches one of the prediction routes (V2 ``infer``, V1 ``:predict``, with or
without a version) goes straight to that route's guarded endpoint, so the auth policy check, the
body limits, JSON depth, the timeout, the request id header, the access log, the metrics and the
error bodies are exactly those of the routed request (they live in the envelope, the guard and the
endpoint, never in Starlette). Matching uses the routes' own compiled patterns in route order, and
prediction routes come first in the table, so a request reaches the same endpoint with the same
path parameters either way; anything else (other methods, other paths) goes on to the router.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from starlette.convertors import StringConvertor
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Receive, Scope, Send

_PREDICTION_SUFFIXES = ("/infer", ":predict")


class FastPath:
    """Dispatches ``POST`` prediction requests to their endpoint directly.

    Args:
        app: The rest of the stack (Starlette's exception middleware and router).
        routes: The app's routes; the ``POST`` routes whose path ends in ``/infer`` or ``:predict``
            and that take only string path parameters are dispatched here.
    """

    def __init__(self, app: ASGIApp, *, routes: Sequence[BaseRoute]) -> None:
        self.app = app
        self._routes: tuple[tuple[re.Pattern[str], ASGIApp], ...] = tuple(
            (route.path_regex, route.app) for route in routes if isinstance(route, Route) and _is_prediction(route)
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and not scope.get("root_path"):
            path: str = scope["path"]
            if path.endswith(_PREDICTION_SUFFIXES):
                for pattern, endpoint in self._routes:
                    match = pattern.match(path)
                    if match is not None:
                        scope["path_params"] = match.groupdict()
                        await endpoint(scope, receive, send)
                        return
        await self.app(scope, receive, send)


def _is_prediction(route: Route) -> bool:
    return (
        route.methods is not None
        and "POST" in route.methods
        and route.path.endswith(_PREDICTION_SUFFIXES)
        and all(isinstance(c, StringConvertor) for c in route.param_convertors.values())
    )
