"""Monitoring, composed: the prediction log, drift, feedback, live metrics, alerts and the dashboard.

Each function takes the :class:`Settings` (where the log, feedback and registry live) and a model
reference, resolves it through the registry, and calls into :mod:`modelport.monitoring`. A
reference selects log rows like this: ``name:3`` and ``name@alias`` mean that version; a bare
``name`` means every version for logs and live metrics, and the version the name resolves to
(``production``, else the latest) for drift, since each version is compared with its own
reference statistics. A bundle path works too: its manifest gives the name and the reference.
The CLI (``modelport logs``, ``modelport monitor ...``, ``modelport dashboard``) is a thin shell
over these functions.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from starlette.applications import Starlette

from modelport.core.errors import ConfigError, NotFound, ValidationError
from modelport.core.refs import ModelRef
from modelport.core.settings import Settings
from modelport.monitoring.alerts import AlertConfig, AlertSources, AlertState, CheckResult, Notifier, check
from modelport.monitoring.dashboard import create_dashboard_app
from modelport.monitoring.drift import DriftReport, DriftThresholds, detect_drift
from modelport.monitoring.feedback import FeedbackReceipt, FeedbackStore
from modelport.monitoring.logs import DEFAULT_LIMIT, LogQueryResult, query_logs
from modelport.monitoring.logview import LogReader
from modelport.monitoring.performance import PerformanceReport, live_metrics
from modelport.monitoring.profiles import ModelProfile, RegistryProfiles
from modelport.monitoring.window import Window
from modelport.registry.registry import Registry
from modelport.registry.runs import RunStore
from modelport.server.config import is_loopback

from .alerting import alert_state_path
from .context import open_registry, registry_scope
from .models import local_bundle
from .serving import feedback_dir, log_dir, log_redactor
from .tables import read_table

DEFAULT_DRIFT_WINDOW = "24h"
DEFAULT_METRICS_WINDOW = "30d"
"""Live metrics look further back than drift: ground truth often arrives days later."""
DASHBOARD_PORT = 8090


@dataclass(frozen=True, slots=True)
class MonitoredModel:
    """What a reference means to monitoring.

    Attributes:
        name: Model name, as in the prediction log.
        version: The version whose rows to read (``None``: every version).
        profile: Reference statistics, signature and redactions of the version the reference
            resolves to (``None`` when the model is only known from its log).
    """

    name: str
    version: int | None
    profile: ModelProfile | None


def log_reader(settings: Settings) -> LogReader:
    """The prediction log of ``settings`` (``MODELPORT_HOME/logs/predictions``)."""
    return LogReader(log_dir(settings))


def feedback_store(settings: Settings) -> FeedbackStore:
    """The ground-truth store of ``settings``, hashing keys like the prediction log does."""
    return FeedbackStore(feedback_dir(settings), redactor=log_redactor(settings))


def resolve_monitored(
    settings: Settings,
    ref: str | ModelRef,
    *,
    registry: Registry | None = None,
    every_version: bool = True,
    with_profile: bool = True,
) -> MonitoredModel:
    """Resolve ``ref`` for monitoring.

    Args:
        settings: Where the log and the registry are.
        ref: ``name``, ``name:3``, ``name@alias`` or a bundle path.
        registry: Registry to resolve in (default: one opened from ``settings`` and closed again).
        every_version: Whether a bare name reads every version's rows (logs, live metrics) rather
            than only the version it resolves to (drift).
        with_profile: Whether to read the version's profile (this fetches its bundle).

    Raises:
        NotFound: The model is neither registered nor in the prediction log, or the version or
            alias does not exist.
        InvalidName: ``ref`` is malformed.
    """
    parsed = ModelRef.parse(ref) if isinstance(ref, str) else ref
    if parsed.path is not None:
        bundle = ModelProfile.from_bundle(local_bundle(parsed.path))
        return MonitoredModel(name=bundle.name, version=None, profile=bundle)
    name = str(parsed.name)
    pinned = parsed.version is not None or parsed.alias is not None
    with registry_scope(settings, registry) as reg:
        try:
            mv = reg.resolve(parsed)
        except NotFound:
            if pinned or not log_reader(settings).has_logs(name):
                raise
            return MonitoredModel(name=name, version=None, profile=None)  # served from a bundle, never registered
        profile = ModelProfile.from_bundle(reg.fetch(mv), version=mv.version) if with_profile else None
    version = None if every_version and not pinned else mv.version
    return MonitoredModel(name=mv.name, version=version, profile=profile)


def query(
    settings: Settings,
    ref: str,
    *,
    since: str | datetime | None = "24h",
    until: datetime | None = None,
    where: str | None = None,
    limit: int = DEFAULT_LIMIT,
    registry: Registry | None = None,
) -> LogQueryResult:
    """Logged predictions of ``ref``, newest first (``modelport logs``).

    Args:
        settings: Where the log and the registry are.
        ref: ``name`` (every version), ``name:3``, ``name@alias`` or a bundle path.
        since: A duration back from now (``"24h"``), a start datetime, or ``None`` for no bound.
        until: End of the window (exclusive).
        where: A DuckDB boolean expression over the record's columns, e.g. ``"status <> 'ok'"``.
        limit: Most rows returned.
        registry: Registry to resolve ``ref`` in (default: from ``settings``).

    Raises:
        NotFound: Unknown model, version or alias.
        ValidationError: A bad duration, limit or ``where`` expression.

    Example:
        >>> query(settings, "churn@production", since="1h", where="latency_ms > 50").rows  # doctest: +SKIP
    """
    target = resolve_monitored(settings, ref, registry=registry, with_profile=False)
    return query_logs(
        log_reader(settings),
        model=target.name,
        version=target.version,
        since=since,
        until=until,
        where=where,
        limit=limit,
    )


def drift_thresholds(values: Mapping[str, Any] | None = None) -> DriftThresholds:
    """:class:`DriftThresholds` from overrides such as ``{"psi": 0.3, "ks_alpha": 0.001}`` (validated)."""
    return DriftThresholds.from_mapping(values or {})


def drift_report(
    settings: Settings,
    ref: str,
    *,
    window: str = DEFAULT_DRIFT_WINDOW,
    thresholds: DriftThresholds | None = None,
    now: datetime | None = None,
    registry: Registry | None = None,
) -> DriftReport:
    """Drift of the logged inputs and predictions of ``ref`` over the last ``window`` (``modelport monitor drift``).

    Args:
        settings: Where the log and the registry are.
        ref: ``name`` (the version it resolves to), ``name:3``, ``name@alias`` or a bundle path.
        window: How far back to look, e.g. ``"24h"``.
        thresholds: Verdict thresholds (default :class:`DriftThresholds()`).
        now: End of the window (default: now).
        registry: Registry to resolve ``ref`` in (default: from ``settings``).

    Raises:
        NotFound: Unknown model, version or alias.
        ValidationError: The version has no reference statistics, or ``window`` is not a duration.

    Example:
        >>> drift_report(settings, "churn@production", window="24h").drifted_features  # doctest: +SKIP
        ['age']
    """
    span = Window.last(window, now=now)
    target = resolve_monitored(settings, ref, registry=registry, every_version=False)
    profile = target.profile
    if profile is None or profile.reference is None:
        label = target.name if target.version is None else f"{target.name}:{target.version}"
        raise ValidationError(
            f"Model {label} has no reference statistics to compare its traffic with.",
            hint="Register a version saved with reference_data=... (e.g. the training features).",
        )
    return detect_drift(
        log_reader(settings),
        profile.reference,
        model=target.name,
        version=target.version,
        window=span,
        thresholds=thresholds,
        signature=profile.signature,
        exclude=profile.redacted,
    )


def record_feedback(
    settings: Settings,
    ref: str,
    file: Path,
    *,
    key: str,
    label: str = "label",
    by_request_id: bool | None = None,
    registry: Registry | None = None,
) -> FeedbackReceipt:
    """Store the ground truth in a CSV/Parquet/JSON Lines file for ``ref``'s model (``modelport monitor feedback``).

    Args:
        settings: Where the feedback and the registry are.
        ref: The model (feedback belongs to a model name; any version reference works).
        file: The labels file.
        key: Column of ``file`` holding the key: a logged input column (e.g. ``customer_id``) whose
            value identifies the prediction, or request ids (see ``by_request_id``).
        label: Column of ``file`` holding the true label or value.
        by_request_id: Whether ``key`` holds request ids (then an optional ``row`` column names the
            row within each request); default: when the column is named ``request_id``.
        registry: Registry to resolve ``ref`` in (default: from ``settings``).

    Raises:
        NotFound: Unknown model, or no such file.
        ValidationError: A missing column, or a row without a usable key or label.
        Unsupported: The file type is not CSV, Parquet or JSON Lines.
    """
    target = resolve_monitored(settings, ref, registry=registry, with_profile=False)
    frame = read_table(Path(file))
    return feedback_store(settings).add_frame(
        target.name,
        frame,
        key=key,
        label=label,
        by_request_id=key == "request_id" if by_request_id is None else by_request_id,
    )


def live_report(
    settings: Settings,
    ref: str,
    *,
    window: str | None = DEFAULT_METRICS_WINDOW,
    now: datetime | None = None,
    positive_label: object = None,
    registry: Registry | None = None,
) -> PerformanceReport:
    """Live metrics of ``ref``: its logged predictions joined to their feedback (``modelport monitor metrics``).

    Args:
        settings: Where the log, the feedback and the registry are.
        ref: ``name`` (every version, each apart), ``name:3``, ``name@alias`` or a bundle path.
        window: Window of prediction times (e.g. ``"7d"``); ``None`` for the whole log.
        now: End of the window (default: now).
        positive_label: The positive class of binary metrics (default: the greater label).
        registry: Registry to resolve ``ref`` in (default: from ``settings``).

    Raises:
        NotFound: Unknown model, version or alias.
        ValidationError: ``window`` is not a duration.
    """
    span = Window.last(window, now=now) if window is not None else Window()
    target = resolve_monitored(settings, ref, registry=registry)
    return live_metrics(
        log_reader(settings),
        feedback_store(settings),
        model=target.name,
        version=target.version,
        window=span,
        signature=target.profile.signature if target.profile is not None else None,
        positive_label=positive_label,
    )


def default_alerts_config(settings: Settings) -> Path:
    """The alert configuration read when none is named: ``MODELPORT_HOME/alerts.yaml``."""
    return settings.home.resolve() / "alerts.yaml"


def alert_sources(settings: Settings, registry: Registry) -> AlertSources:
    """What alert checks read: the log, the feedback and reference profiles through ``registry``."""
    return AlertSources(
        logs=log_reader(settings), feedback=feedback_store(settings), profiles=RegistryProfiles(registry)
    )


def run_checks(
    settings: Settings,
    config: Path | AlertConfig | None = None,
    *,
    notifier: Notifier | None = None,
    now: datetime | None = None,
    registry: Registry | None = None,
) -> CheckResult:
    """Evaluate the alert rules once and report the changes (``modelport monitor check``).

    Crossings and recoveries since the last check (by this command or a server) are logged and
    posted to the configured webhook; the state is kept in :func:`alert_state_path`.

    Args:
        settings: Where the log, the feedback, the registry and the alert state are.
        config: An alert config file (YAML/JSON), a parsed :class:`AlertConfig`, or ``None`` for
            ``MODELPORT_HOME/alerts.yaml``.
        notifier: Delivers the changes (default: the config's webhook, with retries).
        now: End of every rule's window (default: now).
        registry: Registry holding the models' reference statistics (default: from ``settings``).

    Raises:
        ConfigError: The config file is missing or invalid.
    """
    rules = config if isinstance(config, AlertConfig) else _alert_config(settings, config)
    with registry_scope(settings, registry) as reg:
        return check(
            rules, alert_sources(settings, reg), AlertState(alert_state_path(settings)), notifier=notifier, now=now
        )


def _alert_config(settings: Settings, path: Path | None) -> AlertConfig:
    chosen = Path(path) if path is not None else default_alerts_config(settings)
    if not chosen.is_file():
        raise ConfigError(
            f"Alert configuration {chosen} does not exist.",
            hint="Write one (see modelport.monitoring.alerts for the format) or pass --config FILE.",
        )
    return AlertConfig.from_file(chosen)


def dashboard_app(
    settings: Settings,
    *,
    registry: Registry | None = None,
    default_window: str = "24h",
) -> Starlette:
    """The monitoring dashboard as a standalone app (the server mounts the same one at ``/dashboard``).

    Args:
        settings: Where the log, the feedback and the registry are.
        registry: The registry (model list, aliases, reference statistics, batch runs); default
            one opened from ``settings`` (the caller closes it with the app).
        default_window: The window the page opens with.
    """
    reg = registry if registry is not None else open_registry(settings)
    return create_dashboard_app(
        log_dir(settings),
        feedback_dir=feedback_dir(settings),
        registry=reg,
        runs=RunStore(reg.engine),
        default_window=default_window,
    )


def dashboard_url(host: str, port: int) -> str:
    """The address people open: ``http://127.0.0.1:8090/`` (IPv6 hosts bracketed)."""
    shown = f"[{host}]" if ":" in host and not host.startswith("[") else host
    return f"http://{shown}:{port}/"


def serve_dashboard(
    settings: Settings,
    *,
    host: str = "127.0.0.1",
    port: int = DASHBOARD_PORT,
    public: bool = False,
    log_level: str = "warning",
) -> None:
    """Serve the dashboard alone with uvicorn until interrupted (``modelport dashboard``).

    The standalone dashboard has no authentication, so it binds loopback only unless ``public``
    is set; to share it, prefer the server's ``/dashboard``, which API keys guard.

    Raises:
        ConfigError: ``host`` is not a loopback address and ``public`` is not set.
    """
    import uvicorn

    check_dashboard_bind(host, public=public)
    registry = open_registry(settings)
    try:
        app = dashboard_app(settings, registry=registry)
        uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level=log_level, lifespan="off")).run()
    finally:
        registry.close()


def check_dashboard_bind(host: str, *, public: bool) -> None:
    """Refuse a non-loopback address for the unauthenticated standalone dashboard unless ``public``.

    Raises:
        ConfigError: ``host`` is not loopback and ``public`` is false.
    """
    if not public and not is_loopback(host):
        raise ConfigError(
            f"Refusing to serve the dashboard on {host!r}: it has no authentication.",
            hint="Bind 127.0.0.1 and use an SSH tunnel, use the server's /dashboard (guarded by API keys), "
            "or pass --public if this network is trusted.",
        )
