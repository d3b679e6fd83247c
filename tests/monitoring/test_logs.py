"""``modelport logs``: filtering the prediction log, and a user WHERE clause that can only read the log."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from modelport.core.errors import InvalidName, ValidationError
from modelport.monitoring.logs import query_logs
from modelport.monitoring.logview import LogReader
from modelport.runtime.predlog import PredictionRecord

from .support import features, log_traffic, write_records


@pytest.fixture(scope="module")
def log_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("logs")
    rng = np.random.default_rng(0)
    now = datetime.now(UTC)
    log_traffic(root, features(40, rng), version=1, start=now - timedelta(days=3), span=timedelta(hours=2))
    log_traffic(
        root, features(30, rng), version=2, start=now - timedelta(hours=2), span=timedelta(hours=1), error_every=10
    )
    log_traffic(root, features(5, rng), model="other", version=1, start=now - timedelta(hours=1))
    write_records(
        root,
        [PredictionRecord(model="churn", version=2, request_id="run-1", kind="run", source="batch:run-1", ts=now)],
    )
    return root


def test_filters_by_model_version_and_since(log_dir: Path) -> None:
    reader = LogReader(log_dir)
    everything = query_logs(reader, model="churn", limit=1000)
    assert len(everything.rows) == 40 + 30 + 1
    assert {r["model"] for r in everything.rows} == {"churn"}
    recent = query_logs(reader, model="churn", since="24h", limit=1000)
    assert {r["version"] for r in recent.rows} == {2}
    assert len(recent.rows) == 31  # the run record is shown too
    v1 = query_logs(reader, model="churn", version=1, limit=1000)
    assert len(v1.rows) == 40
    stamps = [r["ts"] for r in everything.rows]
    assert stamps == sorted(stamps, reverse=True)  # newest first, ISO text


def test_limit_truncates_and_rows_are_json_ready(log_dir: Path) -> None:
    result = query_logs(LogReader(log_dir), model="churn", limit=5)
    assert len(result.rows) == 5
    assert result.truncated
    row = result.rows[-1]
    assert isinstance(row["inputs"], dict)
    assert set(row["inputs"]) == {"age", "income", "visits", "plan"}
    assert isinstance(row["ts"], str)
    assert result.to_json().startswith("[{")
    assert result.to_dict()["columns"][0] == "ts"


def test_where_filters_on_record_fields_and_flattened_inputs(log_dir: Path) -> None:
    reader = LogReader(log_dir)
    errors = query_logs(reader, model="churn", where="status <> 'ok'", limit=1000)
    assert len(errors.rows) == 3
    assert all(r["error_type"] == "ValidationError" for r in errors.rows)
    older = query_logs(reader, model="churn", where='"inputs.age" > 50 AND latency_ms > 0', limit=1000)
    assert older.rows
    assert all(r["inputs"]["age"] > 50 for r in older.rows)
    picked = query_logs(reader, model="churn", where="request_id = 'churn-2-3'", columns=["request_id", "version"])
    assert picked.rows == ({"request_id": "churn-2-3", "version": 2},)


@pytest.mark.parametrize(
    "where",
    [
        "1=1; SELECT 42",
        "1=1) UNION ALL SELECT * FROM read_csv('/etc/passwd') --",
        "1=1) ; COPY (SELECT 1) TO 'x.csv'; --",
        "EXISTS (SELECT * FROM read_text('/etc/hostname'))",
        "no_such_column > 1",
        "   ",
    ],
)
def test_where_cannot_escape_the_log(log_dir: Path, where: str) -> None:
    with pytest.raises(ValidationError) as info:
        query_logs(LogReader(log_dir), model="churn", where=where)
    assert info.value.hint
    assert not list(log_dir.rglob("*.csv"))


def test_bad_arguments_teach(log_dir: Path) -> None:
    reader = LogReader(log_dir)
    with pytest.raises(ValidationError, match="limit"):
        query_logs(reader, model="churn", limit=0)
    with pytest.raises(ValidationError, match="no column 'nope'"):
        query_logs(reader, model="churn", columns=["nope"])
    with pytest.raises(ValidationError, match="duration"):
        query_logs(reader, model="churn", since="yesterday")
    with pytest.raises(InvalidName):
        query_logs(reader, model="../etc")


def test_an_empty_log_answers_with_no_rows(tmp_path: Path) -> None:
    result = query_logs(LogReader(tmp_path / "nothing"), model="churn", where="status = 'ok'")
    assert result.rows == ()
    assert not result.truncated
