"""Running the app under uvicorn: bind checks, worker processes, graceful shutdown.

:func:`run` refuses to bind anything but loopback unless an admin key is configured (an ``--api-key``
with the admin scope, or, as the caller reports, an admin key stored in the registry). With one
worker it serves the given app object; with several, uvicorn starts worker processes that each
rebuild the app from an import-string factory: the :class:`WorkerSpec` (the server config plus the
registry location) travels to them as JSON in the ``MODELPORT_SERVER_WORKER`` environment variable,
which :func:`worker_spec_from_environment` reads back. :func:`worker_app` is the default factory;
the composition root passes its own (e.g. to add the ONNX fast path) built on the same helper.
The workers also get a private temporary folder (``worker_metrics_dir``, removed when the server
exits) through which they share their metrics (:mod:`~modelport.server.worker_metrics`).
On SIGTERM uvicorn stops accepting connections, lets in-flight requests finish (up to
``drain_timeout_s``), then runs the app's shutdown; the single-worker server also turns readiness
to 503 the moment the signal arrives.
"""

from __future__ import annotations

import copy
import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from types import FrameType
from typing import Any

import uvicorn
from pydantic import BaseModel, ConfigDict, SecretStr, field_serializer
from starlette.applications import Starlette
from starlette.types import ASGIApp

from modelport.core.errors import ConfigError
from modelport.registry.registry import Registry
from modelport.server.app import create_app
from modelport.server.config import ServerConfig
from modelport.server.http_protocol import HTTP_PROTOCOL

WORKER_ENV = "MODELPORT_SERVER_WORKER"
DEFAULT_FACTORY = "modelport.server.run:worker_app"


class RegistryLocation(BaseModel):
    """Where worker processes find the registry (the database URL is a secret)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    db_url: SecretStr
    artifacts_url: str
    actor: str
    home: Path

    @field_serializer("db_url", when_used="json")
    def _reveal(self, value: SecretStr) -> str:
        return value.get_secret_value()

    def open(self) -> Registry:
        """A registry on this location."""
        return Registry.from_urls(self.db_url.get_secret_value(), self.artifacts_url, actor=self.actor, home=self.home)


class WorkerSpec(BaseModel):
    """Everything a worker process needs to rebuild the app."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    config: ServerConfig
    registry: RegistryLocation | None = None

    def to_json(self) -> str:
        """JSON for the environment variable (secrets included: it stays in this process tree)."""
        registry = self.registry.model_dump(mode="json") if self.registry is not None else None
        return json.dumps({"config": json.loads(self.config.to_json()), "registry": registry})


def check_bind(config: ServerConfig, *, admin_keys_configured: bool = False) -> None:
    """Refuse a non-loopback bind address when no admin key is configured.

    Args:
        config: The server configuration (its ``api_keys`` count).
        admin_keys_configured: Whether an admin key exists outside ``config`` (e.g. a registry user
            with the admin role, see :meth:`RegistryKeys.grants <modelport.server.registry_auth.RegistryKeys.grants>`).

    Raises:
        ConfigError: ``host`` is reachable from other machines and no key has the admin scope.
    """
    if not config.binds_loopback and not (config.has_admin_key or admin_keys_configured):
        raise ConfigError(
            f"Refusing to listen on {config.host!r} without an admin API key: anyone who can reach it could "
            "manage the models.",
            hint="Configure a key (--api-key KEY, api_keys in the config file, or a registry user with the admin "
            "role and an API key), or bind 127.0.0.1.",
        )


def worker_spec_from_environment(environ: Mapping[str, str] | None = None) -> WorkerSpec:
    """Read the :class:`WorkerSpec` that :func:`run` put in the environment of the worker processes.

    Raises:
        ConfigError: The variable is missing or invalid.
    """
    text = (environ if environ is not None else os.environ).get(WORKER_ENV)
    if not text:
        raise ConfigError(
            f"{WORKER_ENV} is not set: this factory only runs inside workers started by modelport.",
            hint="Start the server with `modelport serve` or modelport.serve().",
        )
    try:
        return WorkerSpec.model_validate_json(text)
    except ValueError as exc:
        raise ConfigError(f"{WORKER_ENV} is not a valid worker spec.", hint="Restart the server.") from exc


def worker_app() -> Starlette:
    """Default worker factory: the app from the environment's spec, without a fast path."""
    spec = worker_spec_from_environment()
    registry = spec.registry.open() if spec.registry is not None else None
    return create_app(spec.config, registry=registry)


def log_config(level: str) -> dict[str, Any]:
    """uvicorn's logging configuration, extended to modelport's loggers (access log included)."""
    config = copy.deepcopy(uvicorn.config.LOGGING_CONFIG)
    config["loggers"]["modelport"] = {"handlers": ["default"], "level": level.upper(), "propagate": False}
    return config


class _DrainingServer(uvicorn.Server):
    """A uvicorn server that turns the app's readiness off as soon as a shutdown signal arrives."""

    def __init__(self, config: uvicorn.Config, app: ASGIApp) -> None:
        super().__init__(config)
        self._app = app

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        state = getattr(getattr(self._app, "state", None), "modelport", None)
        if state is not None:
            state.begin_drain()
        super().handle_exit(sig, frame)


def uvicorn_options(config: ServerConfig, log_level: str) -> dict[str, Any]:
    """The uvicorn settings derived from ``config``."""
    return {
        "host": config.host,
        "port": config.port,
        "lifespan": "on",
        "access_log": False,
        "timeout_graceful_shutdown": config.drain_timeout_s,
        "log_config": log_config(log_level),
        "log_level": log_level.lower(),
        "server_header": False,
        "http": HTTP_PROTOCOL,
        # X-Forwarded-* rewrite the client only for the proxies the config names (none by default)
        "proxy_headers": bool(config.forwarded_allow_ips),
        "forwarded_allow_ips": list(config.forwarded_allow_ips) or None,
    }


def run(
    config: ServerConfig,
    *,
    app: ASGIApp | None = None,
    factory: str = DEFAULT_FACTORY,
    registry: RegistryLocation | None = None,
    log_level: str = "info",
    admin_keys_configured: bool = False,
) -> None:
    """Serve until SIGINT/SIGTERM.

    Args:
        config: Server configuration (host, port, workers included).
        app: The app to serve with one worker (built by ``create_app``). With several workers it is
            not used: each worker builds its own through ``factory``.
        factory: ``module:function`` returning the app in a worker process (several workers only).
        registry: Where workers find the registry (several workers only).
        log_level: Level of uvicorn's and modelport's loggers.
        admin_keys_configured: Whether an admin key exists beside ``config.api_keys`` (registry-stored
            keys); it allows a non-loopback bind like an admin ``--api-key``.

    Raises:
        ConfigError: Non-loopback bind without an admin key, or one worker without an ``app``.
    """
    check_bind(config, admin_keys_configured=admin_keys_configured)
    options = uvicorn_options(config, log_level)
    if config.workers == 1:
        if app is None:
            raise ConfigError("run() with one worker needs the app.", hint="Pass app=create_app(config, ...).")
        _DrainingServer(uvicorn.Config(app, **options), app).run()
        return
    with tempfile.TemporaryDirectory(prefix="modelport-metrics-", ignore_cleanup_errors=True) as folder:  # 0700
        config = config.model_copy(update={"worker_metrics_dir": Path(folder)})
        os.environ[WORKER_ENV] = WorkerSpec(config=config, registry=registry).to_json()
        uvicorn.run(factory, factory=True, workers=config.workers, **options)
