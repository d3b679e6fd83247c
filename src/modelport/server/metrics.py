"""Prometheus metrics of one server app, in its own ``CollectorRegistry`` (never the global one).

Request counts and latency by route, model and status; per-model batch size, queue time and
prediction latency (fed by the runtime through the observer protocol); cache hits and misses;
requests refused for overload or timeout; prediction-log drops; auth failures; model readiness.
The per-request series (requests, latencies, batch sizes, queue times) are
:mod:`~modelport.server.tallies`: plain numbers updated on the event loop and exported through a
custom collector, so a request pays a dict lookup and two additions, not a lock.

With several worker processes (``--workers N``), every worker's ``/metrics`` shows the whole
server: the workers share snapshots of their samples through a private folder every second, and
the scraped worker answers its live numbers plus the others' latest snapshots (counters and
histograms summed, ``requests_in_flight`` summed, ``model_ready`` the minimum over workers: a
version serves once every worker serves it). See :mod:`~modelport.server.worker_metrics`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from modelport.server.tallies import CounterFamily, CounterTally, HistogramFamily, HistogramTally
from modelport.server.worker_metrics import GaugeMerge, WorkerMetrics

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096)
CONTENT_TYPE = CONTENT_TYPE_LATEST


class ModelSeries:
    """One model's batch-size, model-call latency and queue-time series."""

    __slots__ = ("batch_size", "prediction_latency", "queue_time")

    def __init__(self, batch_size: HistogramTally, prediction_latency: HistogramTally, queue_time: HistogramTally):
        self.batch_size = batch_size
        self.prediction_latency = prediction_latency
        self.queue_time = queue_time


class ServerMetrics:
    """Every metric of one app.

    Args:
        namespace: Prefix of the metric names.
    """

    def __init__(self, namespace: str = "modelport") -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r, ns = self.registry, namespace
        self.requests = CounterFamily(f"{ns}_requests", "HTTP requests.", ["route", "model", "status"])
        self.request_latency = HistogramFamily(
            f"{ns}_request_latency_seconds", "HTTP request latency.", ["route"], LATENCY_BUCKETS
        )
        self.batch_size = HistogramFamily(
            f"{ns}_batch_size", "Requests merged per model call.", ["model"], BATCH_BUCKETS
        )
        self.queue_time = HistogramFamily(
            f"{ns}_queue_time_seconds", "Time a request waited for its batch.", ["model"], LATENCY_BUCKETS
        )
        self.prediction_latency = HistogramFamily(
            f"{ns}_prediction_latency_seconds", "Model call latency per batch.", ["model"], LATENCY_BUCKETS
        )
        for family in (self.requests, self.request_latency, self.batch_size, self.queue_time, self.prediction_latency):
            r.register(family)
        self.in_flight = Gauge(f"{ns}_requests_in_flight", "Requests being handled.", registry=r)
        self.cache = Counter(f"{ns}_cache", "Prediction cache lookups.", ["model", "result"], registry=r)
        self.refused = Counter(f"{ns}_refused", "Requests refused for load.", ["model", "reason"], registry=r)
        self.log_dropped = Counter(f"{ns}_prediction_log_dropped", "Prediction-log records dropped.", registry=r)
        self.log_written = Counter(f"{ns}_prediction_log_written", "Prediction-log records written.", registry=r)
        self.auth_failures = Counter(f"{ns}_auth_failures", "Failed authentications.", registry=r)
        self.model_ready = Gauge(
            f"{ns}_model_ready", "1 when the model version serves.", ["model", "version"], registry=r
        )
        self.model_loads = Counter(f"{ns}_model_loads", "Model load attempts.", ["model", "result"], registry=r)
        self._children: dict[tuple[Any, ...], Any] = {}
        self._request_series: dict[tuple[str, str, int], tuple[CounterTally, HistogramTally]] = {}
        self.gauge_merge: dict[str, GaugeMerge] = {f"{ns}_requests_in_flight": "sum", f"{ns}_model_ready": "min"}
        """How each gauge merges across worker processes (``sum`` when not listed)."""
        self.shared: WorkerMetrics | None = None

    def _child(self, metric: Any, *labels: str) -> Any:
        key = (id(metric), *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def observe_request(self, route: str, model: str, status: int, seconds: float) -> None:
        """Count one finished HTTP request."""
        key = (route, model, status)
        pair = self._request_series.get(key)
        if pair is None:
            pair = self._request_series[key] = (
                self.requests.series(route, model, str(status)),
                self.request_latency.series(route),
            )
        pair[0].value += 1
        pair[1].observe(seconds)

    def model_series(self, model: str) -> ModelSeries:
        """The per-model series a served model records into (fetch once, update per batch)."""
        return ModelSeries(
            self.batch_size.series(model), self.prediction_latency.series(model), self.queue_time.series(model)
        )

    def observe_batch(self, model: str, requests: int, seconds: float) -> None:
        """Record one model call that merged ``requests`` requests and took ``seconds``."""
        self.batch_size.series(model).observe(requests)
        self.prediction_latency.series(model).observe(seconds)

    def observe_queue_time(self, model: str, seconds: float) -> None:
        """Record how long one request waited before its batch ran."""
        self.queue_time.series(model).observe(seconds)

    def count_cache(self, model: str, result: str) -> None:
        """Count a cache ``hit``, ``miss`` or ``error``."""
        self._child(self.cache, model, result).inc()

    def count_refused(self, model: str, reason: str) -> None:
        """Count a request refused as ``overloaded`` or ``timeout``."""
        self._child(self.refused, model, reason).inc()

    def set_ready(self, model: str, version: int, ready: bool) -> None:
        """Publish whether ``model`` version ``version`` serves."""
        self.model_ready.labels(model, str(version)).set(1.0 if ready else 0.0)

    def share(self, directory: Path) -> WorkerMetrics:
        """From now on, merge with the other worker processes' metrics through ``directory``.

        Returns:
            The worker's side of the folder; run its :meth:`~WorkerMetrics.run` while serving.
        """
        self.shared = WorkerMetrics(directory, self.registry, gauge_merge=self.gauge_merge)
        return self.shared

    def render(self) -> bytes:
        """The text exposition of every metric (of every worker, once :meth:`share` was called)."""
        if self.shared is not None:
            return self.shared.render()
        return generate_latest(self.registry)

    def value(self, name: str, labels: dict[str, str] | None = None) -> float | None:
        """The current value of sample ``name`` with ``labels`` (for tests and diagnostics)."""
        return self.registry.get_sample_value(name, labels or {})
