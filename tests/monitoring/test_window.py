"""Durations and windows: the grammar users type (``24h``, ``7d``, ``30m``) and its errors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from modelport.core.errors import ValidationError
from modelport.monitoring.window import Window, bucket_seconds, parse_duration


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30m", timedelta(minutes=30)),
        ("24h", timedelta(hours=24)),
        ("7d", timedelta(days=7)),
        ("2w", timedelta(weeks=2)),
        ("90s", timedelta(seconds=90)),
        (" 1.5H ", timedelta(minutes=90)),
    ],
)
def test_durations_parse(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "24", "h", "-1h", "0m", "1y", "1 day", "99999d"])
def test_bad_durations_teach(text: str) -> None:
    with pytest.raises(ValidationError) as info:
        parse_duration(text)
    assert repr(text) in info.value.message
    assert info.value.hint


def test_window_last_is_anchored_at_now() -> None:
    now = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    window = Window.last("24h", now=now)
    assert window.start == now - timedelta(days=1)
    assert window.end == now
    assert window.describe() == {"start": "2024-04-30T12:00:00+00:00", "end": "2024-05-01T12:00:00+00:00"}


def test_window_of_since_and_naive_datetimes() -> None:
    assert Window.of(None) == Window()
    naive = datetime(2024, 5, 1, 12, 0)
    assert Window.of(naive).start == naive.replace(tzinfo=UTC)
    until = datetime(2024, 5, 2, tzinfo=UTC)
    assert Window.of("1d", until=until) == Window(start=datetime(2024, 5, 1, tzinfo=UTC), end=until)


def test_buckets_keep_series_short() -> None:
    assert bucket_seconds(timedelta(hours=1)) == 60
    assert bucket_seconds(timedelta(days=1)) == 1800
    assert bucket_seconds(timedelta(days=30)) == 43200
    assert timedelta(days=30) / timedelta(seconds=bucket_seconds(timedelta(days=30))) <= 60
