"""``modelport serve [REF ...]``: the online prediction server."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from modelport.cli._context import settings_of
from modelport.cli._render import table


def serve(
    ctx: typer.Context,
    refs: Annotated[list[str] | None, typer.Argument(help="Models to serve; none = every production alias.")] = None,
    host: Annotated[str | None, typer.Option(help="Bind address (default 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="TCP port (default 8080).")] = None,
    workers: Annotated[int | None, typer.Option(help="Worker processes.")] = None,
    config: Annotated[Path | None, typer.Option("--config", help="YAML file of server settings.")] = None,
    api_key: Annotated[
        list[str] | None, typer.Option("--api-key", help="Require this key (repeatable; 'predict:KEY' limits scope).")
    ] = None,
    max_batch_size: Annotated[int | None, typer.Option(help="Most requests merged into one model call.")] = None,
    max_batch_delay_ms: Annotated[float | None, typer.Option(help="Longest wait for a batch to fill.")] = None,
    request_timeout_s: Annotated[float | None, typer.Option(help="Per-request deadline (504).")] = None,
    cache: Annotated[str | None, typer.Option("--cache", help="'memory' or redis://host:6379/0.")] = None,
    cache_ttl_s: Annotated[float | None, typer.Option(help="Lifetime of cached predictions.")] = None,
    accelerate: Annotated[
        bool, typer.Option("--accelerate/--no-accelerate", help="ONNX Runtime fast path when parity holds.")
    ] = True,
    log_level: Annotated[str, typer.Option(help="debug, info, warning, error.")] = "info",
    alerts: Annotated[Path | None, typer.Option("--alerts", help="Alert rules (YAML) checked every minute.")] = None,
) -> None:
    """Serve models over HTTP: Open Inference Protocol V2, V1 :predict, MLflow /invocations."""
    from modelport.api.serving import describe_config, registry_has_keys, server_config
    from modelport.api.serving import serve as run_server

    settings = settings_of(ctx)
    options = {
        "host": host,
        "port": port,
        "workers": workers,
        "api_keys": tuple(api_key) if api_key else None,
        "max_batch_size": max_batch_size,
        "max_batch_delay_ms": max_batch_delay_ms,
        "request_timeout_s": request_timeout_s,
        "cache_url": cache,
        "cache_ttl_s": cache_ttl_s,
    }
    summary = server_config(refs or (), settings=settings, config_file=config, **options)
    described = describe_config(summary, registry_keys=registry_has_keys(settings))
    table("modelport serve", ["setting", "value"], ([k, v] for k, v in described.items()))
    run_server(
        refs or (),
        settings=settings,
        config_file=config,
        accelerate=accelerate,
        log_level=log_level,
        alerts_config=alerts,
        **options,
    )
