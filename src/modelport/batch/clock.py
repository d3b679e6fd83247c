"""Time for batch jobs and the scheduler, behind a small protocol so tests can control it.

Jobs read the wall clock (``scored_at``, run records) and a monotonic clock (rates, leases);
the scheduler also sleeps. :class:`SystemClock` is the real thing; :class:`ManualClock` moves only
when told to (or when something sleeps on it), so schedules, retries and coalescing are tested
without waiting.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    """A source of time."""

    def now(self) -> datetime:
        """The current time, timezone-aware, in UTC."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back (for durations)."""
        ...

    def sleep(self, seconds: float) -> None:
        """Wait ``seconds``."""
        ...


class SystemClock:
    """The machine's clocks."""

    def now(self) -> datetime:
        """``datetime.now(UTC)``."""
        return datetime.now(UTC)

    def monotonic(self) -> float:
        """``time.monotonic()``."""
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        """``time.sleep(seconds)`` (nothing for zero or less)."""
        if seconds > 0:
            time.sleep(seconds)


class ManualClock:
    """A clock that stands still until :meth:`advance` (or :meth:`sleep`) moves it.

    Args:
        start: The initial time (aware; naive values are taken as UTC).

    Example:
        >>> clock = ManualClock(datetime(2025, 1, 1, tzinfo=UTC))
        >>> clock.sleep(90)
        >>> clock.now().isoformat()
        '2025-01-01T00:01:30+00:00'
    """

    def __init__(self, start: datetime) -> None:
        self._now = start if start.tzinfo is not None else start.replace(tzinfo=UTC)
        self._elapsed = 0.0
        self.sleeps: list[float] = []

    def now(self) -> datetime:
        """The current (manual) time."""
        return self._now

    def monotonic(self) -> float:
        """Seconds advanced since creation."""
        return self._elapsed

    def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds``."""
        self._now += timedelta(seconds=seconds)
        self._elapsed += seconds

    def set(self, when: datetime) -> None:
        """Jump to ``when`` (forward only)."""
        delta = (when - self._now).total_seconds()
        if delta < 0:
            raise ValueError("a ManualClock does not go back")
        self.advance(delta)

    def sleep(self, seconds: float) -> None:
        """Record the sleep and advance time by it, at once."""
        self.sleeps.append(seconds)
        self.advance(max(0.0, seconds))
