"""The monitoring dashboard: a Starlette sub-application with one page and its JSON API.

``create_dashboard_app(...)`` returns an app that the server mounts at ``/dashboard`` (and
``modelport dashboard`` serves on its own). The page (``assets/index.html``) and its scripts and
styles ship in the package, so it works without internet; it fetches, relative to itself:

* ``api/models``: models with logged predictions or registered versions;
* ``api/models/{name}/traffic``: predictions, errors, latency p50/p99 per version over time;
* ``api/models/{name}/drift``: drift per feature against the version's reference statistics;
* ``api/models/{name}/performance``: live metrics from ground-truth feedback over time;
* ``api/models/{name}/aliases``: current aliases and their history (with a registry);
* ``api/models/{name}/runs``: batch runs of the model (with a run store).

Every data route takes ``window`` (``1h``, ``24h``, ``7d``...) and ``version``. The dashboard only
reads; it holds no secret and shows no URL, path or SQL. Mounted in the server with API keys on,
the dashboard is reached through the browser sign-in of :mod:`modelport.server.signin`
(``/dashboard/login``).
"""

from __future__ import annotations

import html
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from modelport.core.errors import ModelportError, NotFound, ValidationError
from modelport.core.names import validate_name
from modelport.monitoring.drift import DriftThresholds, detect_drift
from modelport.monitoring.feedback import FeedbackStore
from modelport.monitoring.logs import jsonable
from modelport.monitoring.logview import VIEW, LogReader
from modelport.monitoring.performance import live_metrics
from modelport.monitoring.profiles import ProfileSource, RegistryProfiles
from modelport.monitoring.traffic import traffic
from modelport.monitoring.window import Window, bucket_seconds, parse_duration
from modelport.registry.registry import Registry
from modelport.registry.runs import RunRecord, RunStore, batch_runs

ASSETS = Path(__file__).parent / "assets"
WINDOWS = ("1h", "24h", "7d", "30d")
MAX_RUNS = 60
QUALITY_POINTS = 24
"""Live metrics need more rows per point than traffic: fewer, wider buckets."""
_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'self'"
)


@dataclass(frozen=True, slots=True)
class DashboardSources:
    """Where the dashboard reads from.

    Attributes:
        logs: The prediction log.
        feedback: Ground-truth feedback (live metrics), if any.
        registry: The registry (model list, aliases, reference statistics), if any.
        runs: Batch run records, if any.
        profiles: Finds reference statistics and signatures per version (default: through ``registry``).
        thresholds: Drift thresholds.
        default_window: Window shown first.
        title: Name in the page header.
    """

    logs: LogReader
    feedback: FeedbackStore | None = None
    registry: Registry | None = None
    runs: RunStore | None = None
    profiles: ProfileSource | None = None
    thresholds: DriftThresholds = field(default_factory=DriftThresholds)
    default_window: str = "24h"
    title: str = "modelport"


def create_dashboard_app(
    log_dir: Path,
    *,
    feedback_dir: Path | None = None,
    registry: Registry | None = None,
    runs: RunStore | None = None,
    profiles: ProfileSource | None = None,
    thresholds: DriftThresholds | None = None,
    default_window: str = "24h",
    title: str = "modelport",
) -> Starlette:
    """The dashboard as a Starlette app; mount it (``Mount("/dashboard", app)``) or serve it alone.

    Args:
        log_dir: Root of the prediction log.
        feedback_dir: Root of the feedback store (live metrics); ``None`` hides them.
        registry: The registry: model list, aliases and their history, reference statistics.
        runs: Batch run records (``RunStore(registry.engine)``); ``None`` hides batch runs.
        profiles: Reference statistics and signature per ``(name, version)``; default read through ``registry``.
        thresholds: Drift thresholds; default :class:`~modelport.monitoring.drift.DriftThresholds`.
        default_window: The window the page opens with (e.g. ``"24h"``).
        title: Name shown in the page header.

    Raises:
        ValidationError: ``default_window`` is not a duration.
    """
    parse_duration(default_window)
    sources = DashboardSources(
        logs=LogReader(Path(log_dir)),
        feedback=FeedbackStore(Path(feedback_dir)) if feedback_dir is not None else None,
        registry=registry,
        runs=runs,
        profiles=profiles if profiles is not None else (RegistryProfiles(registry) if registry is not None else None),
        thresholds=thresholds or DriftThresholds(),
        default_window=default_window,
        title=title,
    )
    api = _Api(sources)
    routes = [
        Route("/", api.page, methods=["GET"]),
        Route("/api/models", _json(api.models), methods=["GET"]),
        Route("/api/models/{name}/traffic", _json(api.traffic), methods=["GET"]),
        Route("/api/models/{name}/drift", _json(api.drift), methods=["GET"]),
        Route("/api/models/{name}/performance", _json(api.performance), methods=["GET"]),
        Route("/api/models/{name}/aliases", _json(api.aliases), methods=["GET"]),
        Route("/api/models/{name}/runs", _json(api.runs), methods=["GET"]),
        Mount("/assets", app=StaticFiles(directory=ASSETS), name="assets"),
    ]
    return Starlette(
        routes=routes,
        exception_handlers={ModelportError: _error_response, HTTPException: _http_error},  # type: ignore[dict-item]
    )


def _json(handler: Callable[[Request], dict[str, Any]]) -> Callable[[Request], Awaitable[Response]]:
    """Run a blocking (DuckDB, SQL) handler in the thread pool and answer JSON."""

    async def endpoint(request: Request) -> Response:
        body = await run_in_threadpool(handler, request)
        return JSONResponse(jsonable(body), headers={"Cache-Control": "no-store"})

    return endpoint


async def _error_response(request: Request, exc: ModelportError) -> Response:
    return JSONResponse(exc.to_dict(), status_code=exc.http_status)


async def _http_error(request: Request, exc: HTTPException) -> Response:
    return JSONResponse({"error": str(exc.detail), "hint": None, "type": "HTTPError"}, status_code=exc.status_code)


class _Api:
    """The route handlers, over one :class:`DashboardSources`."""

    def __init__(self, sources: DashboardSources) -> None:
        self.sources = sources

    async def page(self, request: Request) -> Response:
        template = (ASSETS / "index.html").read_text(encoding="utf-8")
        base = request.scope.get("root_path", "").rstrip("/") + "/"
        text = (
            template.replace("{{base}}", html.escape(base, quote=True))
            .replace("{{title}}", html.escape(self.sources.title))
            .replace("{{window}}", html.escape(self.sources.default_window))
        )
        return HTMLResponse(text, headers={"Content-Security-Policy": _CSP, "X-Content-Type-Options": "nosniff"})

    # --- request parsing ------------------------------------------------------------------------

    @staticmethod
    def _window(request: Request, default: str) -> Window:
        return Window.last(request.query_params.get("window") or default)

    @staticmethod
    def _version(request: Request) -> int | None:
        text = request.query_params.get("version") or ""
        if not text:
            return None
        if not text.isdigit() or int(text) < 1:
            raise ValidationError(f"Invalid version {text!r}.", hint="Versions are positive integers.")
        return int(text)

    @staticmethod
    def _name(request: Request) -> str:
        return validate_name(str(request.path_params["name"]))

    # --- routes ---------------------------------------------------------------------------------

    def models(self, request: Request) -> dict[str, Any]:
        seen: dict[str, dict[str, Any]] = {}
        logs = self.sources.logs
        if logs.has_logs():
            with logs.session() as session:
                for name, version, n, last in session.fetch(
                    f"SELECT model, version, count(*), max(ts) FROM {VIEW} GROUP BY ALL ORDER BY ALL"
                ):
                    entry = seen.setdefault(name, {"name": name, "versions": [], "predictions": 0, "last_seen": None})
                    if version is not None:
                        entry["versions"].append(int(version))
                    entry["predictions"] += int(n)
                    entry["last_seen"] = max(filter(None, [entry["last_seen"], last]), default=None)
        registry = self.sources.registry
        if registry is not None:
            for summary in registry.list_models():
                entry = seen.setdefault(
                    summary.name, {"name": summary.name, "versions": [], "predictions": 0, "last_seen": None}
                )
                entry["aliases"] = dict(summary.aliases)
                if summary.latest_version is not None and not entry["versions"]:
                    entry["versions"].append(summary.latest_version)
        models = sorted(seen.values(), key=lambda m: (-m["predictions"], m["name"]))
        for m in models:
            m.setdefault("aliases", {})
            m["versions"] = sorted(set(m["versions"]))
        return {"models": models, "default_window": self.sources.default_window, "windows": list(WINDOWS)}

    def traffic(self, request: Request) -> dict[str, Any]:
        name = self._name(request)
        window = self._window(request, self.sources.default_window)
        return traffic(self.sources.logs, model=name, version=self._version(request), window=window).to_dict()

    def drift(self, request: Request) -> dict[str, Any]:
        name = self._name(request)
        window = self._window(request, self.sources.default_window)
        version = self._version(request) or self._latest_version(name, window)
        if version is None:
            return {"available": False, "reason": "No prediction logged in this window"}
        profile = self.sources.profiles(name, version) if self.sources.profiles is not None else None
        if profile is None or profile.reference is None:
            return {"available": False, "version": version, "reason": f"No reference statistics for v{version}"}
        report = detect_drift(
            self.sources.logs,
            profile.reference,
            model=name,
            version=version,
            window=window,
            thresholds=self.sources.thresholds,
            signature=profile.signature,
            exclude=profile.redacted,
        )
        return {"available": True, **report.to_dict()}

    def _latest_version(self, name: str, window: Window) -> int | None:
        if not self.sources.logs.has_logs(name):
            return None
        with self.sources.logs.session(name) as session:
            where, params = session.scope(model=name, window=window)
            rows = session.fetch(
                f"SELECT version FROM {VIEW} WHERE {where} AND version IS NOT NULL ORDER BY ts DESC LIMIT 1", params
            )
        return int(rows[0][0]) if rows else None

    def performance(self, request: Request) -> dict[str, Any]:
        name = self._name(request)
        window = self._window(request, self.sources.default_window)
        version = self._version(request)
        if self.sources.feedback is None:
            return {"task": None, "labelled": 0, "overall": [], "points": [], "reason": "No feedback store"}
        signature = None
        if self.sources.profiles is not None:
            profile = self.sources.profiles(name, version)
            signature = profile.signature if profile is not None else None
        span = (window.end - window.start) if window.start is not None and window.end is not None else None
        report = live_metrics(
            self.sources.logs,
            self.sources.feedback,
            model=name,
            version=version,
            window=window,
            signature=signature,
            bucket_s=bucket_seconds(span, max_points=QUALITY_POINTS) if span is not None else None,
        )
        return report.to_dict()

    def aliases(self, request: Request) -> dict[str, Any]:
        name = self._name(request)
        registry = self.sources.registry
        if registry is None:
            return {"aliases": {}, "history": []}
        try:
            current = registry.aliases(name)
            history = registry.alias_history(name)
        except NotFound:
            return {"aliases": {}, "history": []}
        return {
            "aliases": current,
            "history": [
                {
                    "alias": e.alias,
                    "old_version": e.old_version,
                    "new_version": e.new_version,
                    "at": e.at.isoformat(),
                    "actor": e.actor,
                    "reason": e.reason,
                }
                for e in history
            ],
        }

    def runs(self, request: Request) -> dict[str, Any]:
        name = self._name(request)
        store = self.sources.runs
        if store is None:
            return {"runs": []}
        query = (
            sa.select(batch_runs)
            .where(batch_runs.c.model_name == name)
            .order_by(batch_runs.c.started_at.desc())
            .limit(MAX_RUNS)
        )
        try:
            with store.engine.connect() as conn:
                records = [RunRecord(**dict(row)) for row in conn.execute(query).mappings()]
        except sa.exc.OperationalError:  # the batch tables are not migrated yet: no runs
            return {"runs": []}
        return {"runs": [_run_summary(r) for r in records], "now": datetime.now(UTC).isoformat()}


def _run_summary(run: RunRecord) -> dict[str, Any]:
    """The fields the page shows (no source/destination: they may name hosts and paths)."""
    return {
        "run_id": run.run_id,
        "schedule": run.schedule,
        "model_version": run.model_version,
        "status": run.status,
        "rows_read": run.rows_read,
        "rows_written": run.rows_written,
        "rows_rejected": run.rows_rejected,
        "started_at": run.started_at.isoformat(),
        "ended_at": run.ended_at.isoformat() if run.ended_at is not None else None,
        "error_type": run.error_type,
    }
