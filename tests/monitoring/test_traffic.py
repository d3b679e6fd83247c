"""Traffic per version and time bucket: counts, errors, latency percentiles like numpy's."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from modelport.monitoring.logview import LogReader
from modelport.monitoring.traffic import traffic
from modelport.monitoring.window import Window
from modelport.runtime.predlog import PredictionRecord

from .support import write_records

START = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def log_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("traffic")
    rng = np.random.default_rng(0)
    records = []
    for version, n in ((1, 120), (2, 60)):
        for i in range(n):
            failed = i % 10 == 0
            records.append(
                PredictionRecord(
                    model="churn", version=version, request_id=f"{version}-{i}",
                    ts=START + timedelta(minutes=i % 120), latency_ms=float(rng.gamma(2.0, 5.0 * version)),
                    status="error" if failed else "ok", error_type="ValidationError" if failed else None,
                )
            )  # fmt: skip
    records.append(PredictionRecord(model="churn", version=1, request_id="run", kind="run", ts=START))
    write_records(root, records)
    return root


def latencies(log_dir: Path, version: int | None = None) -> np.ndarray:
    import duckdb

    con = duckdb.connect()
    where = "kind = 'prediction'" + (f" AND version = {version}" if version else "")
    values = con.execute(f"SELECT latency_ms FROM read_parquet('{log_dir}/**/*.parquet') WHERE {where}").fetchall()
    return np.array([v[0] for v in values])


def test_totals_and_per_version(log_dir: Path) -> None:
    report = traffic(LogReader(log_dir), model="churn")
    assert report.versions == [1, 2]
    assert report.totals.predictions == 180
    assert report.totals.errors == 18
    assert report.totals.error_rate == pytest.approx(0.1)
    assert report.totals.p50_ms == pytest.approx(np.quantile(latencies(log_dir), 0.5))
    assert report.totals.p99_ms == pytest.approx(np.quantile(latencies(log_dir), 0.99))
    by_version = {p.version: p for p in report.by_version}
    assert by_version[2].predictions == 60
    assert by_version[2].errors == 6
    assert by_version[2].p99_ms == pytest.approx(np.quantile(latencies(log_dir, 2), 0.99))


def test_buckets_cover_the_window(log_dir: Path) -> None:
    window = Window(start=START, end=START + timedelta(hours=2))
    report = traffic(LogReader(log_dir), model="churn", window=window, bucket_s=3600)
    assert report.bucket_s == 3600
    points = [(p.version, p.start, p.predictions, p.errors) for p in report.points]
    assert points == [
        (1, START, 60, 6),
        (2, START, 60, 6),
        (1, START + timedelta(hours=1), 60, 6),
    ]
    data = report.to_dict()
    assert data["points"][0] == {**data["points"][0], "t": START.isoformat(), "version": 1, "error_rate": 0.1}
    assert data["totals"]["predictions"] == 180


def test_version_filter_and_automatic_bucket(log_dir: Path) -> None:
    report = traffic(LogReader(log_dir), model="churn", version=2)
    assert report.versions == [2]
    assert report.totals.predictions == 60
    assert report.bucket_s == 60  # an hour of data: one-minute buckets


def test_no_traffic(tmp_path: Path) -> None:
    report = traffic(LogReader(tmp_path), model="churn", window=Window.last("1h"))
    assert report.totals.predictions == 0
    assert report.totals.error_rate is None
    assert report.points == ()
    assert report.versions == []
