"""Request-path tallies: exported by prometheus_client exactly like its own counters and histograms."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, Histogram, generate_latest

from modelport.server.metrics import ServerMetrics
from modelport.server.tallies import CounterFamily, HistogramFamily

BUCKETS = (0.001, 0.01, 0.1, 1.0)


def test_histogram_exposition_matches_the_librarys_own_histogram() -> None:
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    family = HistogramFamily("lat_seconds", "Latency.", ["route"], BUCKETS)
    ours.register(family)
    reference = Histogram("lat_seconds", "Latency.", ["route"], buckets=BUCKETS, registry=theirs)
    for value in (0.0005, 0.001, 0.002, 0.5, 1.0, 7.0):  # on a bound, between bounds, beyond the last
        family.series("infer").observe(value)
        reference.labels("infer").observe(value)
    expected = [ln for ln in generate_latest(theirs).decode().splitlines() if "_created" not in ln]
    assert generate_latest(ours).decode().splitlines() == expected


def test_counter_series_are_kept_per_label_values() -> None:
    registry = CollectorRegistry()
    family = CounterFamily("requests", "Requests.", ["route", "status"])
    registry.register(family)
    family.series("infer", "200").inc()
    family.series("infer", "200").inc(2)
    family.series("infer", "422").inc()
    assert registry.get_sample_value("requests_total", {"route": "infer", "status": "200"}) == 3
    assert registry.get_sample_value("requests_total", {"route": "infer", "status": "422"}) == 1


def test_wrong_label_count_is_refused() -> None:
    with pytest.raises(ValueError, match="takes labels"):
        CounterFamily("requests", "Requests.", ["route"]).series("infer", "extra")


def test_server_metrics_record_requests_batches_and_queue_times() -> None:
    metrics = ServerMetrics()
    metrics.observe_request("v2_infer", "iris", 200, 0.002)
    series = metrics.model_series("iris")
    series.batch_size.observe(3)
    series.queue_time.observe(0.0001)
    assert metrics.value("modelport_requests_total", {"route": "v2_infer", "model": "iris", "status": "200"}) == 1
    assert metrics.value("modelport_request_latency_seconds_count", {"route": "v2_infer"}) == 1
    assert metrics.value("modelport_batch_size_sum", {"model": "iris"}) == 3
    assert metrics.value("modelport_queue_time_seconds_bucket", {"model": "iris", "le": "0.0005"}) == 1
    text = metrics.render().decode()
    assert "# TYPE modelport_batch_size histogram" in text
