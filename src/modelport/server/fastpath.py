"""``FastPath``: prediction requests skip Starlette's middleware stack and router.

The app (:class:`~modelport.server.app.ModelportApp`) asks :meth:`FastPath.match` first: a
``POST`` whose path matches one of the prediction routes (V2 ``infer``, V1 ``:predict``, with or
without a version) goes straight to that route's guarded endpoint inside the request envelope, so
the auth policy check, the body limits, JSON depth, the timeout, the request id header, the access
log, the metrics and the error bodies are exactly those of the routed request (they live in the
envelope, the guard and the endpoint, never in Starlette). Matching uses the routes' own compiled
patterns in route order, and prediction routes come first in the table, so a request reaches the
same endpoint with the same path parameters either way; anything else (other methods, other
paths) goes on to Starlette.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Generic, TypeVar

from starlette.convertors import StringConvertor
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Scope

_PREDICTION_SUFFIXES = ("/infer", ":predict")
MAX_REMEMBERED = 4096
"""Matched paths kept (a path names a model and version: a server sees few; beyond, it matches again)."""


T = TypeVar("T")


class PathMatcher(Generic[T]):
    """Compiled route patterns, each with a value, and the paths already matched (clients repeat theirs).

    Args:
        patterns: ``(compiled path pattern, value)`` pairs, tried in order.
    """

    def __init__(self, patterns: Sequence[tuple[re.Pattern[str], T]]) -> None:
        self._patterns = tuple(patterns)
        self._seen: dict[str, tuple[T, dict[str, str]]] = {}

    def match(self, path: str) -> tuple[T, dict[str, str]] | None:
        """The value of the first pattern ``path`` matches, with the path parameters (shared: read only)."""
        seen = self._seen.get(path)
        if seen is not None:
            return seen
        for pattern, value in self._patterns:
            found = pattern.match(path)
            if found is not None:
                matched = (value, found.groupdict())
                if len(self._seen) < MAX_REMEMBERED:
                    self._seen[path] = matched
                return matched
        return None


class FastPath:
    """Finds the endpoint of a ``POST`` prediction request without the router.

    Args:
        routes: The app's routes; the ``POST`` routes whose path ends in ``/infer`` or ``:predict``
            and that take only string path parameters are matched here.
    """

    def __init__(self, routes: Sequence[BaseRoute]) -> None:
        self._matcher: PathMatcher[ASGIApp] = PathMatcher(
            [(route.path_regex, route.app) for route in routes if isinstance(route, Route) and _is_prediction(route)]
        )

    def match(self, scope: Scope) -> ASGIApp | None:
        """The guarded endpoint for this HTTP request (its ``path_params`` set), or ``None``."""
        if scope["method"] == "POST" and not scope.get("root_path"):
            path: str = scope["path"]
            matched = self._matcher.match(path) if path.endswith(_PREDICTION_SUFFIXES) else None
            if matched is not None:
                scope["path_params"] = matched[1]  # shared between requests: read-only by convention
                return matched[0]
        return None


def _is_prediction(route: Route) -> bool:
    return (
        route.methods is not None
        and "POST" in route.methods
        and route.path.endswith(_PREDICTION_SUFFIXES)
        and all(isinstance(c, StringConvertor) for c in route.param_convertors.values())
    )
