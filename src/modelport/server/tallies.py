"""Counters and histograms for the request path, cheaper than ``prometheus_client``'s own.

A ``prometheus_client`` metric takes a lock and goes through ``labels()`` bookkeeping on every
update: a few microseconds per request across the five per-request metrics, on a path whose whole
budget is a few tens of microseconds. The tallies here are plain integers and floats
updated by the event-loop thread (the only thread that records them, so no lock is needed), and
exported through a ``prometheus_client`` custom collector, so the exposition format, the label
escaping and ``CollectorRegistry.get_sample_value`` are the library's.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator, Sequence

from prometheus_client.metrics_core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString


def _go_float(value: float) -> str:
    """A bucket bound as the Prometheus client formats it (``0.5``, ``1.0``)."""
    text: str = floatToGoString(value)  # type: ignore[no-untyped-call]
    return text


class HistogramTally:
    """One labelled histogram series: a count per bucket (``le`` bounds, then +Inf) and a sum."""

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        """Record one value."""
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value


class CounterTally:
    """One labelled counter series."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def inc(self, amount: float = 1.0) -> None:
        """Add ``amount``."""
        self.value += amount


class _Family(Collector):
    """A family of labelled series, exported as one Prometheus metric."""

    def __init__(self, name: str, documentation: str, labels: Sequence[str]) -> None:
        self.name = name
        self.documentation = documentation
        self.labels = tuple(labels)

    def _check(self, values: tuple[str, ...]) -> None:
        if len(values) != len(self.labels):
            raise ValueError(f"{self.name} takes labels {self.labels}, got {values}")


class CounterFamily(_Family):
    """Labelled counters, exported as a Prometheus counter (``<name>_total``).

    Args:
        name: Metric name, without ``_total``.
        documentation: Help text.
        labels: Label names, in the order :meth:`series` takes their values.
    """

    def __init__(self, name: str, documentation: str, labels: Sequence[str]) -> None:
        super().__init__(name, documentation, labels)
        self._series: dict[tuple[str, ...], CounterTally] = {}

    def series(self, *values: str) -> CounterTally:
        """The series for these label values (created on first use, then cached)."""
        found = self._series.get(values)
        if found is None:
            self._check(values)
            found = self._series[values] = CounterTally()
        return found

    def collect(self) -> Iterator[Metric]:
        """The current values."""
        counter = CounterMetricFamily(self.name, self.documentation, labels=self.labels)
        for values, tally in list(self._series.items()):  # a snapshot: series may be added meanwhile
            counter.add_metric(list(values), tally.value)
        yield counter

    def describe(self) -> Iterator[Metric]:
        """The family without samples (lets the registry check for name clashes up front)."""
        yield CounterMetricFamily(self.name, self.documentation, labels=self.labels)


class HistogramFamily(_Family):
    """Labelled histograms, exported as a Prometheus histogram.

    Args:
        name: Metric name.
        documentation: Help text.
        labels: Label names, in the order :meth:`series` takes their values.
        buckets: Upper bounds (``le``) of the buckets, ascending; +Inf is added.
    """

    def __init__(self, name: str, documentation: str, labels: Sequence[str], buckets: Sequence[float]) -> None:
        super().__init__(name, documentation, labels)
        self.buckets = tuple(float(b) for b in buckets)
        self._bounds = [*(_go_float(b) for b in self.buckets), "+Inf"]
        self._series: dict[tuple[str, ...], HistogramTally] = {}

    def series(self, *values: str) -> HistogramTally:
        """The series for these label values (created on first use, then cached)."""
        found = self._series.get(values)
        if found is None:
            self._check(values)
            found = self._series[values] = HistogramTally(self.buckets)
        return found

    def collect(self) -> Iterator[Metric]:
        """The current values, with cumulative bucket counts."""
        histogram = HistogramMetricFamily(self.name, self.documentation, labels=self.labels)
        for values, tally in list(self._series.items()):
            cumulative, buckets = 0, []
            for bound, count in zip(self._bounds, list(tally.counts), strict=True):
                cumulative += count
                buckets.append((bound, float(cumulative)))
            histogram.add_metric(list(values), buckets, tally.sum)
        yield histogram

    def describe(self) -> Iterator[Metric]:
        """The family without samples."""
        yield HistogramMetricFamily(self.name, self.documentation, labels=self.labels)
