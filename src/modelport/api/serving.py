"""Online serving, composed: the server app plus the ONNX fast path, feedback and the dashboard.

:func:`build_app` wires the layer-3 parts together (the server cannot import edge or monitoring:
they are siblings); :func:`serve` runs it under uvicorn; :func:`worker_app` is the factory each
worker process calls when ``workers > 1``.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from starlette.applications import Starlette
from starlette.routing import BaseRoute

from modelport.core.errors import ConfigError, NotFound
from modelport.core.settings import Settings
from modelport.edge.accelerate import accelerate as onnx_fast_path
from modelport.monitoring.alerts import AlertConfig, AlertSources, AlertState
from modelport.monitoring.dashboard import create_dashboard_app
from modelport.monitoring.feedback import FeedbackStore
from modelport.monitoring.feedback_routes import feedback_routes
from modelport.monitoring.logview import LogReader
from modelport.monitoring.profiles import RegistryProfiles
from modelport.registry.registry import Registry
from modelport.registry.runs import RunStore
from modelport.runtime.redaction import Redactor
from modelport.server.app import create_app
from modelport.server.auth import Policy
from modelport.server.config import ServerConfig
from modelport.server.registry_auth import RegistryKeys
from modelport.server.routes import SignInMount
from modelport.server.run import RegistryLocation, run, worker_spec_from_environment

from .alerting import DEFAULT_INTERVAL_S, alert_state_path, with_periodic_alerts
from .context import open_registry, resolve_settings

WORKER_FACTORY = "modelport.api.serving:worker_app"


def log_dir(settings: Settings) -> Path:
    """Where the prediction log lives: ``MODELPORT_HOME/logs/predictions``."""
    return settings.home.resolve() / "logs" / "predictions"


def feedback_dir(settings: Settings) -> Path:
    """Where ground-truth feedback lives: ``MODELPORT_HOME/logs/feedback``."""
    return settings.home.resolve() / "logs" / "feedback"


def log_redactor(settings: Settings) -> Redactor:
    """The redactor shared by the prediction log and feedback, keyed by ``settings.log_key``.

    Without a configured key, a random one is created once in ``home/secrets/log.key`` (0600), so
    hashed values stay joinable across restarts and with feedback sent later.
    """
    if settings.log_key is not None:
        return Redactor(key=settings.log_key.get_secret_value())
    path = settings.home.resolve() / "secrets" / "log.key"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = path.with_name(f".log.key.{os.getpid()}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_hex(32))
        os.replace(tmp, path)
    return Redactor(key=path.read_text(encoding="utf-8").strip())


def load_config_file(path: Path) -> dict[str, Any]:
    """Read a YAML (or JSON) server config file into keyword arguments for :class:`ServerConfig`."""
    if not path.is_file():
        raise NotFound(f"Server config file {path} does not exist.", hint="Check the --config path.")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"Server config file {path} is not valid YAML: {exc}", hint="Fix the file's syntax.") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"Server config file {path} must hold a mapping of settings.", hint="e.g. 'port: 8080'.")
    return data


def server_config(
    refs: Sequence[str] = (),
    *,
    settings: Settings,
    config_file: Path | None = None,
    **overrides: Any,
) -> ServerConfig:
    """A :class:`ServerConfig` from a config file, then ``overrides`` (``None`` values are ignored)."""
    values: dict[str, Any] = load_config_file(config_file) if config_file is not None else {}
    values.update({k: v for k, v in overrides.items() if v is not None})
    if refs:
        values["models"] = tuple(refs)
    values.setdefault("prediction_log_dir", log_dir(settings))
    values.setdefault("trusted_pickle", settings.trusted_pickle)
    return ServerConfig.build(**values)


def build_app(
    config: ServerConfig,
    *,
    settings: Settings,
    registry: Registry | None = None,
    accelerate: bool = True,
    alerts_config: Path | None = None,
    alerts_interval_s: float = DEFAULT_INTERVAL_S,
    keys: RegistryKeys | None = None,
) -> Starlette:
    """The server app with the fast path, the feedback route and the dashboard mounted.

    The dashboard is a :class:`~modelport.server.routes.SignInMount`: with API keys on, a browser
    signs in at ``/dashboard/login`` and its key travels in an HttpOnly cookie, accepted for the
    dashboard's GET requests only.

    With ``alerts_config`` (a file of :mod:`modelport.monitoring.alerts`), the app also evaluates
    those alert rules every ``alerts_interval_s`` seconds while it runs. API keys stored in the
    registry are accepted beside ``config.api_keys`` (admin role: admin and predict scopes; any
    other role: predict); once the registry has users, every route but health needs a key. Pass
    ``keys`` (from :func:`registry_keys` on the same registry) to reuse an already refreshed checker.

    Example:
        >>> app = build_app(ServerConfig(models=("churn@production",)), settings=Settings())  # doctest: +SKIP
    """
    registry = registry if registry is not None else open_registry(settings)
    keys = keys if keys is not None else registry_keys(registry)
    redactor = log_redactor(settings)
    feedback = FeedbackStore(feedback_dir(settings), redactor=redactor)
    extra: list[tuple[BaseRoute, Policy]] = [
        (route, "predict") for route in feedback_routes(feedback, is_known=_known_models(registry))
    ]
    dashboard = create_dashboard_app(
        config.prediction_log_dir or log_dir(settings),
        feedback_dir=feedback_dir(settings),
        registry=registry,
        runs=RunStore(registry.engine),
    )
    # browsers cannot send a key header on page loads: the dashboard has its own sign-in (a cookie, GET only)
    extra.append((SignInMount("/dashboard", app=dashboard, name="dashboard"), "predict"))
    app = create_app(
        config,
        registry=registry,
        accelerate=onnx_fast_path if accelerate else None,
        extra_routes=extra,
        redactor=redactor,
        authenticators=(keys,),
    )
    if alerts_config is None:
        return app
    logs = LogReader(config.prediction_log_dir or log_dir(settings))
    sources = AlertSources(logs=logs, feedback=feedback, profiles=RegistryProfiles(registry))
    rules, state = AlertConfig.from_file(alerts_config), AlertState(alert_state_path(settings))
    return with_periodic_alerts(app, rules, sources, state, interval_s=alerts_interval_s)


def registry_keys(registry: Registry) -> RegistryKeys:
    """The registry's API-key checker, with its users read once (blocking)."""
    keys = RegistryKeys(registry)
    keys.refresh()
    return keys


def registry_has_keys(settings: Settings | None = None) -> bool:
    """Whether the registry of ``settings`` holds active users, so the server will require API keys.

    Also ``True`` when the users cannot be read: the server then fails closed and requires keys.
    """
    registry = open_registry(resolve_settings(settings))
    try:
        return registry_keys(registry).has_keys
    finally:
        registry.close()


def _known_models(registry: Registry) -> Any:
    def is_known(name: str) -> bool:
        return any(summary.name == name for summary in registry.list_models())

    return is_known


def serve(
    refs: Sequence[str] = (),
    *,
    settings: Settings | None = None,
    config_file: Path | None = None,
    accelerate: bool = True,
    log_level: str = "info",
    alerts_config: Path | None = None,
    **options: Any,
) -> None:
    """Serve models over HTTP until interrupted (SIGINT/SIGTERM drain in-flight requests).

    Args:
        refs: ``name``, ``name:3``, ``name@alias`` or bundle paths; none serves every model with a
            ``production`` alias.
        settings: Registry location and home (default: from ``MODELPORT_*`` variables).
        config_file: YAML file of :class:`ServerConfig` settings.
        accelerate: Serve scikit-learn/XGBoost/LightGBM models through ONNX Runtime when parity holds.
        log_level: uvicorn and modelport log level.
        alerts_config: Alert rules (:mod:`modelport.monitoring.alerts`) the server evaluates every minute
            (one worker only).
        **options: Any :class:`ServerConfig` field (``host``, ``port``, ``workers``, ``api_keys``, ...).

    Example:
        >>> modelport.serve(["churn@production"], port=8080)  # doctest: +SKIP
    """
    settings = resolve_settings(settings)
    config = server_config(refs, settings=settings, config_file=config_file, **options)
    location = RegistryLocation(
        db_url=settings.database_url,
        artifacts_url=settings.artifacts_location,
        actor=settings.actor,
        home=settings.home.resolve(),
    )
    if config.workers > 1 and alerts_config is not None:
        raise ConfigError(
            "Periodic alerts run in a single-worker server only.",
            hint="Serve with one worker, or run 'modelport monitor check' from cron beside the workers.",
        )
    registry = open_registry(settings)
    keys = registry_keys(registry)
    admin_keys = keys.grants("admin")  # a registry admin's key allows a non-loopback bind
    if config.workers > 1:
        registry.close()  # each worker opens its own
        run(config, factory=WORKER_FACTORY, registry=location, log_level=log_level, admin_keys_configured=admin_keys)
        return
    app = build_app(
        config, settings=settings, registry=registry, keys=keys, accelerate=accelerate, alerts_config=alerts_config
    )
    run(config, app=app, log_level=log_level, admin_keys_configured=admin_keys)


def worker_app() -> Starlette:
    """Factory for worker processes: rebuild the same composed app from the spec in the environment."""
    spec = worker_spec_from_environment()
    if spec.registry is None:
        raise ConfigError("Worker started without a registry location.", hint="Start it with modelport serve.")
    settings = Settings(
        home=spec.registry.home,
        db_url=spec.registry.db_url,
        artifacts_url=spec.registry.artifacts_url,
        user=spec.registry.actor,
    )
    return build_app(spec.config, settings=settings, registry=spec.registry.open())


def describe_auth(config: ServerConfig, *, registry_keys: bool = False) -> str:
    """How requests are authenticated: ``--api-key`` keys, keys stored in the registry, both, or off."""
    kinds = [name for name, on in (("api keys", config.auth_enabled), ("registry keys", registry_keys)) if on]
    return " + ".join(kinds) if kinds else "off (loopback only)"


def describe_config(config: ServerConfig, *, registry_keys: bool = False) -> Mapping[str, Any]:
    """The settings worth printing at start-up (no secrets).

    Args:
        config: The server configuration.
        registry_keys: Whether the registry holds API keys (see :func:`registry_has_keys`); authentication
            is then on even without ``--api-key``.
    """
    return {
        "models": list(config.models) or ["every model with a production alias"],
        "listen": f"http://{config.host}:{config.port}",
        "workers": config.workers,
        "auth": describe_auth(config, registry_keys=registry_keys),
        "batching": f"up to {config.max_batch_size} rows, {config.max_batch_delay_ms} ms",
        "prediction log": str(config.prediction_log_dir) if config.prediction_log_dir else "off",
    }
