"""``ServerState``: everything one app holds, built by ``create_app`` and started in its lifespan.

Constructors only store; :meth:`ServerState.start` (inside the running loop) creates the thread
pools, the cache, the prediction-log writer and loads the models; :meth:`ServerState.stop` turns
readiness off, drains in-flight requests (up to ``drain_timeout_s``), then unloads models and
closes the rest. In a worker process of a several-worker server (``worker_metrics_dir`` set) it also
runs the task sharing the metrics with the other workers. Nothing here is global: two apps in one
process share nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from concurrent.futures import Executor
from importlib.metadata import PackageNotFoundError, version

from modelport.core.redact import redact_url
from modelport.runtime.predlog import PredictionLogWriter
from modelport.server.accesslog import AccessLog
from modelport.server.auth import Gate
from modelport.server.cache import PredictionCache, open_cache
from modelport.server.config import ServerConfig
from modelport.server.limits import BodyLimits
from modelport.server.manager import ModelManager
from modelport.server.metrics import ServerMetrics
from modelport.server.middleware import InFlight
from modelport.server.predlogging import PredictionLogging
from modelport.server.release_routing import ReleaseRouting

logger = logging.getLogger("modelport.server")


def package_version() -> str:
    """The installed modelport version (for the V2 server metadata)."""
    try:
        return version("modelport")
    except PackageNotFoundError:
        return "0+unknown"


class ServerState:
    """The parts of one server app.

    Args:
        config: The server configuration.
        manager: The model manager.
        gate: Authentication and authorisation.
        metrics: The app's metrics.
        prediction_log: Writer of the prediction log, or ``None``.
        releases: Canary/shadow routing of active releases (with a registry), or ``None``.
    """

    def __init__(
        self,
        config: ServerConfig,
        *,
        manager: ModelManager,
        gate: Gate,
        metrics: ServerMetrics,
        prediction_log: PredictionLogWriter | None,
        releases: ReleaseRouting | None = None,
    ) -> None:
        self.config = config
        self.manager = manager
        self.gate = gate
        self.metrics = metrics
        self.prediction_log = prediction_log
        self.releases = releases
        self.predlog = PredictionLogging(prediction_log) if prediction_log is not None else None
        if self.predlog is not None:
            manager.on_loaded = self.predlog.register
        self.access_log = AccessLog(config.access_log)
        self.in_flight = InFlight()
        metrics.in_flight.set_function(lambda: self.in_flight.count)  # read at scrape time, not per request
        self._metrics_sharing: asyncio.Task[None] | None = None
        self.cache: PredictionCache | None = None
        self.version = package_version()
        self.limits = BodyLimits(
            max_json_bytes=config.max_body_bytes,
            max_binary_bytes=config.max_binary_body_bytes,
            max_chunks=config.max_body_chunks,
            max_json_depth=config.max_json_depth,
        )

    @property
    def inference_executor(self) -> Executor:
        """Threads running model calls."""
        return self.manager.loader.inference_executor

    async def start(self) -> None:
        """Open the thread pools, the cache and the prediction log, then load every model."""
        self.manager.loader.open()
        if self.config.cache_url is not None:
            url = self.config.cache_url.get_secret_value()
            self.cache = open_cache(url, ttl_s=self.config.cache_ttl_s, max_entries=self.config.cache_max_entries)
            logger.info("Prediction cache: %s (TTL %g s)", redact_url(url), self.config.cache_ttl_s)
        if self.prediction_log is not None:
            self.prediction_log.start()
        if self.releases is not None:
            await self.releases.start()
        if self.config.worker_metrics_dir is not None:
            shared = self.metrics.share(self.config.worker_metrics_dir)
            self._metrics_sharing = asyncio.create_task(shared.run(), name="modelport-worker-metrics")
        await self.manager.start()
        if self.config.freeze_gc:
            gc.collect()
            gc.freeze()  # start-up objects leave the collector's scans: no long pauses under load
        ready, reasons = self.manager.readiness()
        if ready:
            logger.info("Serving %s", ", ".join(self.manager.names()) or "no model yet")
        else:
            logger.error("Not ready: %s", "; ".join(reasons))

    def begin_drain(self) -> None:
        """Readiness turns 503 now; requests in flight continue."""
        self.manager.begin_drain()

    async def stop(self) -> None:
        """Drain, then unload models and close the cache, the log and the thread pools."""
        self.begin_drain()
        drained = await self.in_flight.wait_idle(self.config.drain_timeout_s)
        if not drained:
            logger.warning(
                "Shutdown: %d request(s) still in flight after %g s", self.in_flight.count, self.config.drain_timeout_s
            )
        if self.releases is not None:
            await self.releases.stop()
        await self.manager.stop(timeout_s=None if drained else 0.0)
        if self.cache is not None:
            await self.cache.close()
        if self.prediction_log is not None:
            await asyncio.to_thread(self.prediction_log.stop)
        self.manager.loader.close()
        if self._metrics_sharing is not None:
            self._metrics_sharing.cancel()  # it writes a last snapshot as it ends
            with contextlib.suppress(asyncio.CancelledError):
                await self._metrics_sharing
