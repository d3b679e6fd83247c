"""Periodic alert checks inside a running server: a task started and stopped by the app's lifespan.

:func:`with_periodic_alerts` wraps a Starlette app's lifespan so that, while the app runs, an
asyncio task calls :func:`modelport.monitoring.alerts.check` every ``interval_s`` seconds in a
worker thread (the checks read Parquet with DuckDB and may wait on a webhook). The task is
created inside the running loop and cancelled and awaited on shutdown. The firing/resolved state
lives in :func:`alert_state_path`, shared with ``modelport monitor check``, so a crossing is
reported once whichever of them sees it first.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

from starlette.applications import Starlette

from modelport.core.errors import ConfigError
from modelport.core.settings import Settings
from modelport.monitoring.alerts import AlertConfig, AlertSources, AlertState, check

logger = logging.getLogger("modelport.alerts")

DEFAULT_INTERVAL_S = 60.0
"""How often a server evaluates its alert rules, by default."""


def alert_state_path(settings: Settings) -> Path:
    """Where the firing/resolved state of alerts is kept: ``MODELPORT_HOME/logs/alerts-state.json``."""
    return settings.home.resolve() / "logs" / "alerts-state.json"


def with_periodic_alerts(
    app: Starlette,
    config: AlertConfig,
    sources: AlertSources,
    state: AlertState,
    *,
    interval_s: float = DEFAULT_INTERVAL_S,
) -> Starlette:
    """Make ``app`` evaluate ``config`` every ``interval_s`` seconds while its lifespan runs.

    The app's own lifespan runs first (models load), then the alert task starts; on shutdown the
    task is cancelled before the app's own shutdown. A failing check is logged and retried at the
    next tick: alerting never stops serving.

    Args:
        app: The server app (returned, with its lifespan wrapped).
        config: The alert rules and webhook.
        sources: The prediction log, feedback and reference profiles the checks read.
        state: Where the alert state is kept between checks.
        interval_s: Seconds between two checks (the first runs ``interval_s`` after start-up).

    Raises:
        ConfigError: ``interval_s`` is not positive.
    """
    if not interval_s > 0:
        raise ConfigError(f"Invalid alert interval {interval_s!r} s.", hint="Use a positive number of seconds.")
    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(owner: Any) -> AsyncIterator[Any]:
        context: AbstractAsyncContextManager[Any] = inner(owner)
        async with context as value:
            task = asyncio.get_running_loop().create_task(_alert_loop(config, sources, state, interval_s))
            try:
                yield value
            finally:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    app.router.lifespan_context = lifespan
    return app


async def _alert_loop(config: AlertConfig, sources: AlertSources, state: AlertState, interval_s: float) -> None:
    while True:
        await asyncio.sleep(interval_s)
        try:
            result = await asyncio.to_thread(check, config, sources, state)
        except Exception:  # a background task must outlive a bad tick (unreadable file, full disk...)
            logger.exception("Alert check failed; trying again in %s s.", interval_s)
            continue
        logger.debug("Alert check: %d limits evaluated, %d firing.", len(result.checks), len(result.firing))
