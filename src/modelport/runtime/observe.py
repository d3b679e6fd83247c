"""What the runtime reports while it works, as a Protocol, so runtime code never imports a metrics library.

The server implements :class:`RuntimeObserver` on top of its own Prometheus registry (one observer
per served model for the batcher, one for the prediction-log writer); batch jobs and tests use
:class:`NullObserver`, or subclass it to override only the hooks they care about. Every hook is
called on a hot path: implementations must be cheap and must never raise.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable


@runtime_checkable
class RuntimeObserver(Protocol):
    """Receives measurements from :class:`~modelport.runtime.batcher.MicroBatcher` and the prediction log."""

    def observe_batch(self, size: int, seconds: float) -> None:
        """One batch of ``size`` items went through the processing function in ``seconds`` (its latency)."""
        ...

    def observe_queue_time(self, seconds: float) -> None:
        """One item waited ``seconds`` in the queue before its batch started."""
        ...

    def observe_overload(self, waiting: int) -> None:
        """An item was refused because ``waiting`` items already filled the queue."""
        ...

    def log_dropped(self, count: int, reason: str) -> None:
        """``count`` prediction-log records were dropped: ``queue_full``, ``write_error``, ``stopped``, ``invalid``."""
        ...

    def log_written(self, count: int, nbytes: int) -> None:
        """``count`` prediction-log records were written, growing the log by about ``nbytes`` bytes."""
        ...


class NullObserver:
    """An observer that ignores everything; subclass it to implement only some hooks."""

    def observe_batch(self, size: int, seconds: float) -> None:
        """Ignore a batch measurement."""

    def observe_queue_time(self, seconds: float) -> None:
        """Ignore a queue time."""

    def observe_overload(self, waiting: int) -> None:
        """Ignore a refused item."""

    def log_dropped(self, count: int, reason: str) -> None:
        """Ignore dropped log records."""

    def log_written(self, count: int, nbytes: int) -> None:
        """Ignore written log records."""
