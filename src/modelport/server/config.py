"""``ServerConfig``: every knob of the online server, with the safe defaults of RELIABILITY.md.

A frozen pydantic model built at the edge (CLI, ``modelport.api``) and passed to
:func:`modelport.server.app.create_app`. It round-trips through JSON (:meth:`ServerConfig.to_json` /
:meth:`ServerConfig.from_json`) so that worker processes can rebuild the same app. API keys are
hashed as soon as the config is built: the plain key never lives in the config, its JSON or its
repr.
"""

from __future__ import annotations

import hashlib
import ipaddress
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_serializer, field_validator
from pydantic import ValidationError as PydanticValidationError

from modelport.core.errors import ConfigError
from modelport.core.redact import redact_url

Scope = Literal["predict", "admin"]
"""What a key may do: ``predict`` (inference and metadata) or ``admin`` (also the repository routes)."""

MIN_KEY_LENGTH = 16
MIB = 1024 * 1024


class ApiKey(BaseModel):
    """One API key, stored as its sha256 digest with the scopes it grants.

    Attributes:
        sha256: Hex digest of the key.
        scopes: Scopes granted; ``admin`` implies ``predict``.
        label: A name for logs (never the key itself).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    scopes: frozenset[Scope] = frozenset({"predict", "admin"})
    label: str = "key"

    @classmethod
    def from_secret(cls, text: str, *, label: str | None = None) -> ApiKey:
        """Hash a key given as ``KEY`` (all scopes), ``predict:KEY`` or ``admin:KEY``.

        Raises:
            ConfigError: When the key is shorter than 16 characters.
        """
        scopes: frozenset[Scope] = frozenset({"predict", "admin"})
        prefix, sep, rest = text.partition(":")
        if sep and prefix in ("predict", "admin"):
            scopes = frozenset({"predict"}) if prefix == "predict" else frozenset({"predict", "admin"})
            text = rest
        if len(text) < MIN_KEY_LENGTH:
            raise ConfigError(
                f"An API key of {len(text)} characters is too short (at least {MIN_KEY_LENGTH}).",
                hint="Generate one with: python -c 'import secrets; print(secrets.token_urlsafe(32))'",
            )
        digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
        return cls(sha256=digest, scopes=scopes, label=label or f"key-{digest[:8]}")


class ServerConfig(BaseModel):
    """Configuration of one server (every worker process gets the same).

    Attributes:
        models: References to serve (``name``, ``name:3``, ``name@alias`` or a bundle path);
            empty means every registered model with a ``production`` alias.
        host: Bind address; anything but loopback requires an admin key.
        port: TCP port.
        workers: Worker processes (each loads every model).
        api_keys: Keys (hashed on construction) with their scopes; none means no authentication on
            predict routes, and admin routes disabled.
        max_batch_size: Most rows' requests merged into one model call.
        max_batch_delay_ms: Once several requests are queued, how long the batcher waits for more
            before calling the model. 0 (default): batches form from the requests that arrive while
            the previous call runs, with no added wait; raise it for models whose per-call cost
            is high (e.g. native scikit-learn pipelines) to get bigger batches.
        inline_below_ms: A batch expected to take less than this (from the warm-up timings and its
            row count) is scored on the event loop instead of a thread: for it a thread hop costs
            more than the call. 0 sends every call to the thread pool.
        max_queue: Requests waiting per model before 503; default ``max_batch_size * 4``.
        request_timeout_s: Per-request deadline (504 beyond it).
        max_body_bytes: JSON body cap after decompression (413 beyond it).
        max_binary_body_bytes: Cap for V2 binary-extension bodies.
        max_json_depth: Deepest JSON nesting accepted (400 beyond it).
        max_body_chunks: Most body chunks (chunked transfer) per request.
        drain_timeout_s: How long shutdown waits for in-flight requests.
        load_retries: Attempts to load a model version before reporting it failed.
        load_backoff_s: First retry delay, doubled at each attempt.
        poll_interval_s: How often the registry is polled for alias moves (0 disables hot swap).
        warmup_rows: Reference-sample rows scored (and timed) before a model is declared ready.
        cache_url: ``memory`` or ``redis://...`` to answer identical requests from a cache.
        cache_ttl_s: Lifetime of cached predictions.
        cache_max_entries: Size of the in-memory cache per server.
        cache_models: Models whose predictions are cached; empty means all (when ``cache_url`` is set).
        prediction_log_dir: Where the prediction log is written; ``None`` disables it.
        access_log: One JSON line per request on the ``modelport.server.access`` logger.
        trusted_pickle: Allow loading pickle bundles (hash-checked).
        default_model: Model answering ``/invocations`` when several are served.
        auth_failure_limit: Failed authentications per client and window before 429.
        auth_failure_window_s: The window of ``auth_failure_limit``.
        retry_after_s: ``Retry-After`` sent with 503 on a full queue.
        inference_threads: Threads running model calls; default one per model (at least 2).
        freeze_gc: After start-up, move every object then alive out of the cyclic garbage
            collector's reach (``gc.freeze``), so its full collections stay short under load.
        version_headers: Also name the model and version that answered in ``X-Model-Name`` and
            ``X-Model-Version`` headers on V2 and V1 responses, whose bodies always name them (for
            a proxy that routes or counts by header). ``/invocations`` always sends them: MLflow's
            body has no place for them. Off by default: each header costs the HTTP server about
            as much as parsing the request's JSON.
        forwarded_allow_ips: Addresses (or CIDR networks, or ``*``) of the reverse proxies whose
            ``X-Forwarded-For`` and ``X-Forwarded-Proto`` headers are believed: the client they name
            is then the one the access log shows and the auth-failure limiter counts. Empty
            (default): those headers are ignored and the connection's peer is the client, so that
            no caller can pick its own address. Behind a proxy on the same host, set
            ``["127.0.0.1"]``.
        worker_metrics_dir: Folder where worker processes share their metrics, so that each one's
            ``/metrics`` shows the whole server; :func:`~modelport.server.run.run` sets it (a
            private temporary folder) when it starts several workers. Leave it unset.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    models: tuple[str, ...] = ()
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    workers: int = Field(default=1, ge=1, le=256)
    api_keys: tuple[ApiKey, ...] = ()
    max_batch_size: int = Field(default=64, ge=1, le=100_000)
    max_batch_delay_ms: float = Field(default=0.0, ge=0.0, le=10_000.0)
    inline_below_ms: float = Field(default=1.0, ge=0.0)
    max_queue: int | None = Field(default=None, ge=1)
    request_timeout_s: float = Field(default=30.0, gt=0.0)
    max_body_bytes: int = Field(default=16 * MIB, ge=1)
    max_binary_body_bytes: int = Field(default=64 * MIB, ge=1)
    max_json_depth: int = Field(default=64, ge=2, le=1000)
    max_body_chunks: int = Field(default=65_536, ge=1)
    drain_timeout_s: float = Field(default=30.0, ge=0.0)
    load_retries: int = Field(default=3, ge=1, le=20)
    load_backoff_s: float = Field(default=0.5, ge=0.0)
    poll_interval_s: float = Field(default=2.0, ge=0.0)
    warmup_rows: int = Field(default=8, ge=0)
    cache_url: SecretStr | None = None
    cache_ttl_s: float = Field(default=300.0, gt=0.0)
    cache_max_entries: int = Field(default=10_000, ge=1)
    cache_models: tuple[str, ...] = ()
    prediction_log_dir: Path | None = None
    access_log: bool = True
    trusted_pickle: bool = False
    default_model: str | None = None
    auth_failure_limit: int = Field(default=10, ge=1)
    auth_failure_window_s: float = Field(default=60.0, gt=0.0)
    retry_after_s: int = Field(default=1, ge=1)
    inference_threads: int | None = Field(default=None, ge=1)
    freeze_gc: bool = True
    version_headers: bool = False
    forwarded_allow_ips: tuple[str, ...] = ()
    worker_metrics_dir: Path | None = None

    @field_validator("api_keys", mode="before")
    @classmethod
    def _hash_keys(cls, value: Any) -> Any:
        if isinstance(value, str | SecretStr):
            value = [value]
        if not isinstance(value, list | tuple):
            return value
        return tuple(
            ApiKey.from_secret(v.get_secret_value() if isinstance(v, SecretStr) else v, label=f"key-{i + 1}")
            if isinstance(v, str | SecretStr)
            else v
            for i, v in enumerate(value)
        )

    @field_validator("forwarded_allow_ips")
    @classmethod
    def _check_proxies(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        # uvicorn would take a mistyped entry for a literal host name that never matches: refuse it here
        if "*" in value and len(value) > 1:
            raise ValueError("'*' trusts every address and must be the only entry")
        for entry in value:
            if entry == "*":
                continue
            try:
                ipaddress.ip_network(entry) if "/" in entry else ipaddress.ip_address(entry)
            except ValueError:
                raise ValueError(
                    f"{entry!r} is neither an IP address nor a network (e.g. 127.0.0.1, 10.0.0.0/8, or '*')"
                ) from None
        return value

    @field_validator("cache_url")
    @classmethod
    def _check_cache_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        text = value.get_secret_value()
        if text != "memory" and not text.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError(f"cache_url must be 'memory' or a redis:// URL, got {redact_url(text)!r}")
        return value

    @field_serializer("cache_url", when_used="json")
    def _dump_cache_url(self, value: SecretStr | None, info: Any) -> str | None:
        if value is None:
            return None
        context = info.context or {}
        return value.get_secret_value() if context.get("reveal_secrets") else redact_url(value.get_secret_value())

    @classmethod
    def build(cls, **values: Any) -> ServerConfig:
        """Validate ``values`` into a config, raising :class:`ConfigError` that names the bad field."""
        try:
            return cls(**values)
        except ConfigError:
            raise
        except PydanticValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "config"
            raise ConfigError(
                f"Invalid server setting {where}: {first['msg']}.",
                hint="Check the value given on the command line, in the config file or to modelport.serve().",
            ) from exc

    @property
    def queue_limit(self) -> int:
        """Requests waiting per model before 503."""
        return self.max_queue if self.max_queue is not None else self.max_batch_size * 4

    @property
    def auth_enabled(self) -> bool:
        """Whether predict routes require a key."""
        return bool(self.api_keys)

    @property
    def has_admin_key(self) -> bool:
        """Whether at least one key carries the ``admin`` scope."""
        return any("admin" in k.scopes for k in self.api_keys)

    @property
    def binds_loopback(self) -> bool:
        """Whether ``host`` only accepts local connections."""
        return is_loopback(self.host)

    def cache_enabled_for(self, model: str) -> bool:
        """Whether predictions of ``model`` go through the cache."""
        return self.cache_url is not None and (not self.cache_models or model in self.cache_models)

    def to_json(self) -> str:
        """Serialise for a worker process, secrets included (keys are already hashed)."""
        return self.model_dump_json(context={"reveal_secrets": True})

    @classmethod
    def from_json(cls, text: str) -> ServerConfig:
        """Rebuild a config written by :meth:`to_json`."""
        try:
            return cls.model_validate_json(text)
        except PydanticValidationError as exc:
            raise ConfigError(
                f"Invalid serialised server config: {exc.errors()[0]['msg']}.",
                hint="The config passed to the worker processes is corrupted; restart the server.",
            ) from exc


def is_loopback(host: str) -> bool:
    """Whether ``host`` is a loopback name or address (``localhost``, ``127.x``, ``::1``)."""
    if host in ("localhost", "ip6-localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
