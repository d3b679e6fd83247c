"""Traffic, latency and errors of a model over time, from the prediction log.

Per version and time bucket: predictions logged, errors among them, latency p50 and p99; and the
same over the whole window. One grouped DuckDB query (``quantile_cont`` for the percentiles).
Latency is per logged prediction: the rows of one batched request share the request's latency.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from modelport.monitoring.logview import OK_STATUS, VIEW, LogReader
from modelport.monitoring.window import Window, bucket_seconds, bucket_sql


@dataclass(frozen=True, slots=True)
class TrafficPoint:
    """Traffic of one version in one bucket (or, with ``start=None``, over the window).

    Attributes:
        version: Model version (``None`` for unregistered bundles).
        start: Bucket start (UTC), ``None`` for the whole window.
        predictions: Logged predictions.
        errors: Predictions whose status is not ``ok``.
        p50_ms: Median latency in milliseconds (``None`` without latencies).
        p99_ms: 99th-percentile latency in milliseconds.
    """

    version: int | None
    start: datetime | None
    predictions: int
    errors: int
    p50_ms: float | None
    p99_ms: float | None

    @property
    def error_rate(self) -> float | None:
        """``errors / predictions`` (``None`` without predictions)."""
        return self.errors / self.predictions if self.predictions else None

    def to_dict(self) -> dict[str, Any]:
        """``{"version", "t", "predictions", "errors", "error_rate", "p50_ms", "p99_ms"}``."""
        return {
            "version": self.version,
            "t": self.start.isoformat() if self.start is not None else None,
            "predictions": self.predictions,
            "errors": self.errors,
            "error_rate": self.error_rate,
            "p50_ms": self.p50_ms,
            "p99_ms": self.p99_ms,
        }


@dataclass(frozen=True, slots=True)
class TrafficReport:
    """Traffic of a model over a window.

    Attributes:
        model: Model name.
        window: The window.
        bucket_s: Bucket width of ``points``, in seconds.
        points: One point per version and bucket, in time order.
        by_version: One point per version over the window.
        totals: All versions together over the window.
    """

    model: str
    window: Window
    bucket_s: int
    points: tuple[TrafficPoint, ...]
    by_version: tuple[TrafficPoint, ...]
    totals: TrafficPoint

    @property
    def versions(self) -> list[int]:
        """Versions seen in the window, ascending."""
        return sorted({p.version for p in self.by_version if p.version is not None})

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form: ``{"model", "window", "bucket_s", "versions", "points", "by_version", "totals"}``."""
        return {
            "model": self.model,
            "window": self.window.describe(),
            "bucket_s": self.bucket_s,
            "versions": self.versions,
            "points": [p.to_dict() for p in self.points],
            "by_version": [p.to_dict() for p in self.by_version],
            "totals": self.totals.to_dict(),
        }


def traffic(
    reader: LogReader,
    *,
    model: str,
    version: int | None = None,
    window: Window | None = None,
    bucket_s: int | None = None,
) -> TrafficReport:
    """Predictions, errors and latency percentiles of ``model`` per version and time bucket.

    Args:
        reader: The prediction log.
        model: Model name.
        version: Only this version; default every version.
        window: Time window; default the whole log.
        bucket_s: Bucket width in seconds; default chosen from the window length (≤ 60 buckets).
    """
    window = window or Window()
    with reader.session(model) as session:
        where, params = session.scope(model=model, version=version, window=window)
        if bucket_s is None:
            bucket_s = _bucket(session.fetch(f"SELECT min(ts), max(ts) FROM {VIEW} WHERE {where}", params)[0], window)
        latency = "latency_ms" if "latency_ms" in session.columns else "NULL::DOUBLE"
        errors = (
            f"count(*) FILTER (WHERE status IS DISTINCT FROM '{OK_STATUS}')" if "status" in session.columns else "0"
        )
        rows = session.fetch(
            f"SELECT version, {bucket_sql('ts', bucket_s)} AS bucket, count(*), {errors}, "
            f"quantile_cont({latency}, 0.5), quantile_cont({latency}, 0.99), grouping(version, bucket) "
            f"FROM {VIEW} WHERE {where} GROUP BY GROUPING SETS ((version, bucket), (version), ()) "
            "ORDER BY bucket NULLS FIRST, version NULLS FIRST",
            params,
        )
    points, by_version = [], []
    totals = TrafficPoint(version=None, start=None, predictions=0, errors=0, p50_ms=None, p99_ms=None)
    for v, start, n, failed, p50, p99, grouping in rows:
        point = TrafficPoint(
            version=v, start=start, predictions=int(n), errors=int(failed), p50_ms=_float(p50), p99_ms=_float(p99)
        )
        if grouping == 0:
            points.append(point)
        elif grouping == 1:
            by_version.append(point)
        else:
            totals = point
    return TrafficReport(
        model=model,
        window=window,
        bucket_s=bucket_s,
        points=tuple(points),
        by_version=tuple(by_version),
        totals=totals,
    )


def _bucket(bounds: tuple[Any, ...], window: Window) -> int:
    low, high = bounds
    start = window.start or low
    end = window.end or high
    if start is None or end is None:
        return 3600
    return bucket_seconds(end - start)


def _float(value: Any) -> float | None:
    return float(value) if value is not None else None
