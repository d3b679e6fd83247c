"""Time windows over the prediction log: ``"24h"``, ``"7d"``, ``"30m"`` and the span they cover.

Every monitoring query looks at a window ``[start, end)`` of prediction timestamps. Users name
the window by its length (``--since 24h``, ``--window 7d``); :func:`parse_duration` reads that
grammar and :class:`Window` anchors it at an end time (now, unless told otherwise). All times are
timezone-aware UTC.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from modelport.core.errors import ValidationError

_DURATION = re.compile(r"^\s*(?P<amount>\d+(?:\.\d+)?)\s*(?P<unit>s|m|h|d|w)\s*$", re.IGNORECASE)
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
MAX_DURATION = timedelta(days=3660)
"""Longest window accepted (about ten years): anything longer is a typo."""


def parse_duration(text: str | timedelta) -> timedelta:
    """Parse a duration such as ``"30m"``, ``"24h"``, ``"7d"``, ``"2w"`` or ``"90s"``.

    Args:
        text: A positive number followed by one unit: ``s``, ``m``, ``h``, ``d`` or ``w``.
            A :class:`~datetime.timedelta` is returned unchanged (after the same checks).

    Raises:
        ValidationError: The text does not follow the grammar, or the duration is not positive.

    >>> parse_duration("24h")
    datetime.timedelta(days=1)
    """
    if isinstance(text, timedelta):
        duration = text
    else:
        match = _DURATION.match(text) if isinstance(text, str) else None
        if match is None:
            raise ValidationError(
                f"Invalid duration {text!r}.",
                hint="Write a number and a unit: s, m, h, d or w (e.g. '30m', '24h', '7d').",
            )
        duration = timedelta(**{_UNITS[match["unit"].lower()]: float(match["amount"])})
    if duration <= timedelta(0) or duration > MAX_DURATION:
        raise ValidationError(
            f"Duration {text!r} is out of range.",
            hint="Use a positive duration of at most ten years (e.g. '24h').",
        )
    return duration


def as_utc(moment: datetime) -> datetime:
    """``moment`` as an aware UTC datetime (a naive one is taken to be UTC already)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


@dataclass(frozen=True, slots=True)
class Window:
    """The half-open time span ``[start, end)`` a monitoring query looks at.

    Attributes:
        start: First instant included (aware UTC), or ``None`` for "since the first record".
        end: First instant excluded (aware UTC), or ``None`` for "up to now and beyond".
    """

    start: datetime | None = None
    end: datetime | None = None

    @classmethod
    def last(cls, duration: str | timedelta, *, now: datetime | None = None) -> Window:
        """The window of length ``duration`` ending at ``now`` (default: the current time).

        Args:
            duration: e.g. ``"24h"`` (see :func:`parse_duration`).
            now: The end of the window; default the current UTC time.
        """
        end = as_utc(now) if now is not None else datetime.now(UTC)
        return cls(start=end - parse_duration(duration), end=end)

    @classmethod
    def of(cls, since: str | timedelta | datetime | None = None, *, until: datetime | None = None) -> Window:
        """A window from a user's ``since`` (a duration back from ``until``/now, or a datetime).

        Args:
            since: ``None`` (no lower bound), a duration such as ``"24h"``, or a start datetime.
            until: The end of the window; ``None`` means no upper bound (a duration then counts back from now).
        """
        end = as_utc(until) if until is not None else None
        if since is None:
            return cls(start=None, end=end)
        if isinstance(since, datetime):
            return cls(start=as_utc(since), end=end)
        anchor = end if end is not None else datetime.now(UTC)
        return cls(start=anchor - parse_duration(since), end=end)

    def describe(self) -> dict[str, str | None]:
        """JSON-able form: ``{"start": iso | None, "end": iso | None}``."""
        return {
            "start": self.start.isoformat() if self.start is not None else None,
            "end": self.end.isoformat() if self.end is not None else None,
        }


BUCKETS_S = (60, 300, 900, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600, 86400, 7 * 86400, 30 * 86400)
"""Bucket widths for time series, in seconds: the smallest giving at most ``max_points`` buckets wins."""


def bucket_seconds(span: timedelta, *, max_points: int = 60) -> int:
    """The time-series bucket width (seconds) for a window of length ``span``."""
    seconds = max(span.total_seconds(), 1.0)
    return next((b for b in BUCKETS_S if seconds / b <= max_points), BUCKETS_S[-1])


def bucket_sql(column: str, seconds: int) -> str:
    """SQL flooring the TIMESTAMPTZ ``column`` to ``seconds``-wide buckets aligned on the UTC epoch."""
    return f"to_timestamp(floor(epoch({column}) / {int(seconds)}) * {int(seconds)})"
