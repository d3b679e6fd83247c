"""The prediction log: record format, Parquet layout read by DuckDB, never blocking, degrading on errors."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from modelport.core.errors import ValidationError
from modelport.runtime import predlog
from modelport.runtime.observe import NullObserver
from modelport.runtime.predlog import (
    SCHEMA_VERSION,
    PredictionLogWriter,
    PredictionRecord,
    error_fields,
    request_records,
    rows_of,
)
from modelport.runtime.redaction import Redactor

KEY = "a-long-random-secret-key"


class Counts(NullObserver):
    def __init__(self) -> None:
        self.dropped: dict[str, int] = {}
        self.written = 0

    def log_dropped(self, count: int, reason: str) -> None:
        self.dropped[reason] = self.dropped.get(reason, 0) + count

    def log_written(self, count: int, nbytes: int) -> None:
        self.written += count


@pytest.fixture
def make_writer(tmp_path: Path) -> Iterator[Callable[..., PredictionLogWriter]]:
    writers: list[PredictionLogWriter] = []

    def make(**kwargs: Any) -> PredictionLogWriter:
        kwargs.setdefault("flush_interval_s", 0.02)
        writer = PredictionLogWriter(tmp_path / "log", **kwargs)
        writers.append(writer)
        return writer

    yield make
    for writer in writers:
        writer.stop()


def read_log(root: Path) -> list[dict[str, Any]]:
    con = duckdb.connect()
    try:
        cursor = con.execute(
            "SELECT * FROM read_parquet(?, hive_partitioning = true, union_by_name = true) ORDER BY request_id, row",
            [str(root / "model=*" / "date=*" / "*.parquet")],
        )
        names = [d[0] for d in cursor.description or ()]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
    finally:
        con.close()


def wait_until(predicate: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.01)
    raise AssertionError("condition never became true")


def one_request(request_id: str = "r1", model: str = "churn", **kwargs: Any) -> list[PredictionRecord]:
    return request_records(
        model=model,
        version=2,
        request_id=request_id,
        inputs=[{"age": 31, "city": "Oslo"}, {"age": 45.5, "city": "Lima"}],
        outputs={"predict": np.array(["stay", "leave"]), "predict_proba": np.array([[0.9, 0.1], [0.2, 0.8]])},
        latency_ms=1.25,
        **kwargs,
    )


# --- records ---------------------------------------------------------------------------------------


def test_request_records_one_per_row_sharing_the_request_id() -> None:
    records = one_request(route="canary")
    assert [r.row for r in records] == [0, 1]
    assert {r.request_id for r in records} == {"r1"}
    assert records[1].inputs == {"age": 45.5, "city": "Lima"}
    assert records[1].outputs is not None
    assert records[1].outputs["predict"] == "leave"
    assert list(records[1].outputs["predict_proba"]) == [0.2, 0.8]
    assert all(r.route == "canary" and r.status == "ok" and r.ts.tzinfo is not None for r in records)


def test_request_records_for_a_failed_request() -> None:
    records = request_records(
        model="m", version=1, request_id="r", inputs=[{"age": "x"}], error=ValidationError("column 'age': bad")
    )
    assert len(records) == 1
    assert records[0].status == "error"
    assert records[0].error_type == "ValidationError"
    assert records[0].error == "column 'age': bad"
    assert records[0].inputs == {"age": "x"}
    unparseable = request_records(model="m", version=1, request_id="r", inputs=object(), error=KeyError("/secret/path"))
    assert unparseable[0].inputs is None
    assert error_fields(KeyError("/secret/path")) == ("KeyError", "internal error")


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ([{"a": 1}, {"a": 2}], [{"a": 1}, {"a": 2}]),
        ({"a": [1, 2], "b": np.array([3, 4])}, [{"a": 1, "b": 3}, {"a": 2, "b": 4}]),
        ({"a": 1, "b": 2}, [{"a": 1, "b": 2}]),
        (pd.DataFrame({"a": [1, 2]}), [{"a": 1}, {"a": 2}]),
        (np.array([[1, 2]]), [{"x": 1, "y": 2}]),
        ([[1, 2], [3, 4]], [{"x": 1, "y": 2}, {"x": 3, "y": 4}]),
        ({"a": [1, 2], "b": [1]}, None),
        ("text", None),
    ],
)
def test_rows_of(data: Any, expected: list[dict[str, Any]] | None) -> None:
    assert rows_of(data, columns=["x", "y"]) == expected


def test_rows_of_tensor_input() -> None:
    rows = rows_of(np.zeros((2, 2, 2)))
    assert rows is not None
    assert len(rows) == 2
    assert rows[0]["input"].shape == (2, 2)


# --- writing and reading -----------------------------------------------------------------------------


def test_records_round_trip_through_partitioned_parquet(make_writer: Callable[..., PredictionLogWriter]) -> None:
    counts = Counts()
    writer = make_writer(observer=counts)
    writer.start()
    assert writer.log_many(one_request()) == 2
    assert writer.log(PredictionRecord(model="other", version=None, request_id="r9", inputs={"x": np.float32(1.5)}))
    assert writer.flush()
    files = sorted(p.relative_to(writer.directory).as_posix() for p in writer.directory.rglob("*.parquet"))
    today = datetime.now(UTC).date().isoformat()
    assert len(files) == 2
    assert files[0].startswith(f"model=churn/date={today}/part-")
    assert files[1].startswith(f"model=other/date={today}/part-")
    rows = read_log(writer.directory)
    churn = [r for r in rows if r["model"] == "churn"]
    assert [r["row"] for r in churn] == [0, 1]
    first = churn[0]
    assert first["schema_version"] == SCHEMA_VERSION
    assert first["version"] == 2
    assert first["route"] == "primary"
    assert first["source"] == "online"
    assert first["kind"] == "prediction"
    assert first["status"] == "ok"
    assert first["latency_ms"] == 1.25
    assert first["inputs"] == '{"age":31,"city":"Oslo"}'
    assert first["outputs"] == '{"predict":"stay","predict_proba":[0.9,0.1]}'
    assert first["inputs.age"] == 31.0
    assert first["inputs.city"] == "Oslo"
    assert first["outputs.predict"] == "stay"
    assert first["outputs.predict_proba"] == [0.9, 0.1]
    assert str(first["date"]) == today
    assert writer.written == 3
    assert counts.written == 3
    assert writer.dropped == 0


def test_json_columns_handle_numpy_nan_and_dates(make_writer: Callable[..., PredictionLogWriter]) -> None:
    writer = make_writer()
    writer.start()
    record = PredictionRecord(
        model="m",
        version=1,
        request_id="r",
        inputs={"n": np.int64(3), "x": float("nan"), "when": datetime(2024, 1, 2, tzinfo=UTC), "v": np.array([1, 2])},
        outputs={"predict": np.float64(np.inf), "flag": np.bool_(True)},
        latency_ms=float("nan"),
    )
    assert writer.log(record)
    assert writer.flush()
    (row,) = read_log(writer.directory)
    assert row["inputs"] == '{"n":3,"x":null,"when":"2024-01-02T00:00:00+00:00","v":[1,2]}'
    assert row["outputs"] == '{"predict":null,"flag":true}'
    assert row["latency_ms"] is None
    assert row["inputs.n"] == 3.0
    assert row["inputs.v"] == [1.0, 2.0]
    assert row["outputs.flag"] is True


def test_a_file_is_visible_only_once_complete(make_writer: Callable[..., PredictionLogWriter]) -> None:
    writer = make_writer(max_file_age_s=3600)
    writer.start()
    writer.log_many(one_request())
    wait_until(lambda: writer.written == 2)
    assert list(writer.directory.rglob("*.parquet")) == []  # still being written, under a hidden .tmp name
    assert len(list(writer.directory.rglob(".part-*.parquet.tmp"))) == 1
    writer.log_many(one_request("r2"))  # appended to the same open file
    assert writer.flush()
    assert list(writer.directory.rglob("*.tmp")) == []
    (path,) = writer.directory.rglob("*.parquet")
    assert pq.ParquetFile(path).metadata.num_rows == 4


def test_files_rotate_by_age_without_a_flush(make_writer: Callable[..., PredictionLogWriter]) -> None:
    writer = make_writer(max_file_age_s=0.0)
    writer.start()
    writer.log_many(one_request())
    wait_until(lambda: len(list(writer.directory.rglob("part-*.parquet"))) == 1)


def test_files_rotate_by_size(make_writer: Callable[..., PredictionLogWriter]) -> None:
    writer = make_writer(max_file_bytes=1, max_file_age_s=3600)
    writer.start()
    for i in range(3):
        writer.log_many(one_request(f"r{i}"))
        wait_until(lambda i=i: writer.written == 2 * (i + 1))  # type: ignore[misc]
    assert len(list(writer.directory.rglob("part-*.parquet"))) == 3
    assert len(read_log(writer.directory)) == 6


def test_changing_flattened_columns_share_one_file(make_writer: Callable[..., PredictionLogWriter]) -> None:
    writer = make_writer(max_file_age_s=3600)
    writer.start()
    writer.log(PredictionRecord(model="m", version=1, request_id="a", inputs={"x": 1.0, "y": "u"}))
    wait_until(lambda: writer.written == 1)
    writer.log(PredictionRecord(model="m", version=1, request_id="b", inputs={"x": "text", "z": 2.0}))
    assert writer.flush()
    assert len(list(writer.directory.rglob("part-*.parquet"))) == 1
    first, second = read_log(writer.directory)
    assert (first["inputs.x"], first["inputs.y"]) == (1.0, "u")
    assert (second["inputs.x"], second["inputs.y"]) == (None, None)  # other kinds live in the JSON only
    assert second["inputs"] == '{"x":"text","z":2.0}'


# --- never block, never fail -------------------------------------------------------------------------


def test_full_queue_drops_counts_and_warns_once(
    make_writer: Callable[..., PredictionLogWriter], caplog: pytest.LogCaptureFixture
) -> None:
    counts = Counts()
    writer = make_writer(max_queue=3, observer=counts)  # not started: nothing drains the queue
    caplog.set_level(logging.WARNING, logger="modelport.predlog")
    results = [writer.log(r) for _ in range(5) for r in one_request()]
    assert results == [True, True, True] + [False] * 7
    assert writer.dropped == 7
    assert writer.dropped_by_reason == {"queue_full": 7}
    assert counts.dropped == {"queue_full": 7}
    warnings = [r for r in caplog.records if "dropped" in r.getMessage()]
    assert len(warnings) == 1  # rate-limited
    assert "queue_full" in warnings[0].getMessage()


def test_invalid_model_names_never_become_paths(make_writer: Callable[..., PredictionLogWriter]) -> None:
    writer = make_writer()
    writer.start()
    assert not writer.log(PredictionRecord(model="../escape", version=1, request_id="r"))
    assert not writer.log(PredictionRecord(model="a/b", version=1, request_id="r"))
    assert writer.dropped_by_reason == {"invalid": 2}
    assert writer.flush()
    assert not (writer.directory.parent / "escape").exists()
    assert list(writer.directory.rglob("*.parquet")) == []


def test_write_errors_degrade_logging_and_recover(
    make_writer: Callable[..., PredictionLogWriter], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    counts = Counts()
    writer = make_writer(observer=counts)
    caplog.set_level(logging.WARNING, logger="modelport.predlog")

    def disk_full(*args: Any, **kwargs: Any) -> Any:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(predlog.pq, "ParquetWriter", disk_full)
    writer.start()
    assert writer.log_many(one_request()) == 2  # the caller never sees the failure
    assert writer.flush()
    assert writer.dropped_by_reason == {"write_error": 2}
    assert counts.dropped == {"write_error": 2}
    assert any("No space left on device" in r.getMessage() for r in caplog.records)
    monkeypatch.undo()
    assert writer.log_many(one_request("r2")) == 2
    assert writer.flush()
    assert [r["request_id"] for r in read_log(writer.directory)] == ["r2", "r2"]
    assert list(writer.directory.rglob("*.tmp")) == []


def test_a_failing_rename_drops_the_file_and_leaves_no_tmp(
    make_writer: Callable[..., PredictionLogWriter], monkeypatch: pytest.MonkeyPatch
) -> None:
    writer = make_writer()

    def broken_replace(src: Any, dst: Any) -> None:
        raise OSError(5, "I/O error")

    monkeypatch.setattr(predlog.os, "replace", broken_replace)
    writer.start()
    writer.log_many(one_request())
    assert writer.flush()
    assert writer.dropped_by_reason == {"write_error": 2}
    assert list(writer.directory.rglob("*.tmp")) == []
    assert list(writer.directory.rglob("*.parquet")) == []


def test_an_append_to_an_open_file_that_fails_discards_it(
    make_writer: Callable[..., PredictionLogWriter], monkeypatch: pytest.MonkeyPatch
) -> None:
    writer = make_writer(max_file_age_s=3600)
    writer.start()
    writer.log_many(one_request())
    wait_until(lambda: writer.written == 2)

    def failing_write(self: Any, table: Any, *args: Any, **kwargs: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(predlog.pq.ParquetWriter, "write_table", failing_write)
    writer.log_many(one_request("r2"))
    assert writer.flush()
    # The open file held the first request too: both are counted as lost, nothing half-written remains.
    assert writer.dropped_by_reason == {"write_error": 4}
    assert writer.written == 0
    assert list(writer.directory.rglob("*.tmp")) == []


def test_stop_writes_what_is_queued_then_refuses(make_writer: Callable[..., PredictionLogWriter]) -> None:
    writer = make_writer(flush_interval_s=30.0, max_file_age_s=3600)
    writer.start()
    writer.log_many(one_request())
    writer.stop()
    assert len(read_log(writer.directory)) == 2
    assert not writer.log(one_request()[0])
    assert writer.dropped_by_reason == {"stopped": 1}
    assert not writer.flush()
    writer.stop()  # idempotent


def test_lifecycle_misuse(make_writer: Callable[..., PredictionLogWriter]) -> None:
    writer = make_writer()
    assert not writer.flush()  # not started
    writer.start()
    with pytest.raises(RuntimeError, match="already started"):
        writer.start()


# --- retention -------------------------------------------------------------------------------------


def test_purge_older_than_deletes_whole_old_days(make_writer: Callable[..., PredictionLogWriter]) -> None:
    writer = make_writer()
    writer.start()
    old = datetime.now(UTC) - timedelta(days=40)
    writer.log_many(one_request("old", ts=old))
    writer.log_many(one_request("new"))
    assert writer.flush()
    assert len(list(writer.directory.glob("model=churn/date=*"))) == 2
    assert writer.purge_older_than(30) == 1
    assert [p.name for p in writer.directory.glob("model=churn/date=*")] == [f"date={datetime.now(UTC).date()}"]
    assert {r["request_id"] for r in read_log(writer.directory)} == {"new"}


def test_retention_runs_in_the_background(make_writer: Callable[..., PredictionLogWriter], tmp_path: Path) -> None:
    stale = tmp_path / "log" / "model=churn" / "date=2000-01-01"
    stale.mkdir(parents=True)
    (stale / "part-x.parquet").write_bytes(b"old")
    writer = make_writer(retention_days=30)
    writer.start()
    wait_until(lambda: not stale.exists())


def test_enforce_size_removes_the_oldest_files(make_writer: Callable[..., PredictionLogWriter]) -> None:
    writer = make_writer(max_file_bytes=1)
    writer.start()
    for i in range(3):
        writer.log_many(one_request(f"r{i}"))
        assert writer.flush()
        time.sleep(0.01)
    files = sorted(writer.directory.rglob("part-*.parquet"), key=lambda p: p.stat().st_mtime)
    newest_size = files[-1].stat().st_size
    assert writer.enforce_size(newest_size) == 2
    assert list(writer.directory.rglob("part-*.parquet")) == [files[-1]]


# --- redaction ---------------------------------------------------------------------------------------


def test_raw_values_of_redacted_columns_never_reach_any_file(make_writer: Callable[..., PredictionLogWriter]) -> None:
    redactor = Redactor(key=KEY, default_rules={"email": "hash", "ssn": "drop", "name": "mask"})
    writer = make_writer(redactor=redactor, max_file_bytes=1)
    writer.start()
    secrets = {"email": "alice.secret@example.com", "ssn": "987-65-4321", "name": "Alice Secretname"}
    good = request_records(
        model="crm",
        version=1,
        request_id="ok",
        inputs=[{**secrets, "age": 31}],
        outputs={"predict": np.array([1])},
        latency_ms=2.0,
    )
    bad = request_records(
        model="crm",
        version=1,
        request_id="bad",
        inputs=[{**secrets, "age": "forty"}],
        error=ValidationError(f"column 'email': expected string, got str ({secrets['email']!r}) at row 0."),
    )
    assert writer.log_many(good + bad) == 2
    writer.stop()
    blobs = [p.read_bytes() for p in writer.directory.rglob("*") if p.is_file()]
    assert blobs
    for raw in secrets.values():
        assert not any(raw.encode() in blob for blob in blobs), raw
    rows = read_log(writer.directory)
    assert "ssn" not in rows[0]["inputs"]
    assert rows[1]["inputs.name"] == "***"
    assert rows[1]["inputs.email"] == redactor.hash_value(secrets["email"])  # joins still work
    assert rows[0]["error"] == "column 'email': expected string, got str (***) at row 0."
