"""``MetricsObserver``: the runtime's observer protocol, recorded in the server's Prometheus metrics.

One per served model (batch size, batch latency, queue time, overloads) and one for the
prediction-log writer (drops, writes). Every hook is an update of a cached series: cheap and never raising.
"""

from __future__ import annotations

from modelport.server.metrics import ModelSeries, ServerMetrics


class MetricsObserver:
    """Implements :class:`~modelport.runtime.observe.RuntimeObserver` for one model.

    Args:
        metrics: The app's metrics.
        model: The model name used as label (empty for the prediction log).
    """

    def __init__(self, metrics: ServerMetrics, model: str) -> None:
        self.metrics = metrics
        self.model = model
        self._series: ModelSeries | None = None  # created on first use: no empty series in the exposition

    def _model_series(self) -> ModelSeries:
        if self._series is None:
            self._series = self.metrics.model_series(self.model)
        return self._series

    def observe_batch(self, size: int, seconds: float) -> None:
        """A batch of ``size`` requests took ``seconds``."""
        series = self._model_series()
        series.batch_size.observe(size)
        series.prediction_latency.observe(seconds)

    def observe_queue_time(self, seconds: float) -> None:
        """One request waited ``seconds`` for its batch."""
        self._model_series().queue_time.observe(seconds)

    def observe_overload(self, waiting: int) -> None:
        """A request was refused with ``waiting`` already queued (counted by the endpoint as well)."""

    def log_dropped(self, count: int, reason: str) -> None:
        """Prediction-log records dropped."""
        self.metrics.log_dropped.inc(count)

    def log_written(self, count: int, nbytes: int) -> None:
        """Prediction-log records written."""
        self.metrics.log_written.inc(count)
