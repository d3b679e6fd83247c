"""The read-only DuckDB view over the log: locked down, and reaching values whatever their Parquet shape."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from modelport.core.errors import ServiceUnavailable
from modelport.monitoring.feedback import normalise_label
from modelport.monitoring.logview import LogReader, label_sql
from modelport.runtime.predlog import PredictionRecord

from .support import write_records


@pytest.fixture
def log_dir(tmp_path: Path) -> Path:
    records = [
        PredictionRecord(model="churn", version=1, request_id="a", inputs={"age": 30.5, "plan": "pro", "vip": True},
                         outputs={"predict": 1, "predict_proba": [0.2, 0.8]}),
        PredictionRecord(model="churn", version=1, request_id="b", inputs={"age": None, "plan": "basic", "vip": False},
                         outputs={"predict": 0, "predict_proba": [0.9, 0.1]}),
        PredictionRecord(model="other", version=4, request_id="c", inputs={"x": 1}),
    ]  # fmt: skip
    write_records(tmp_path / "logs", records)
    return tmp_path / "logs"


def test_models_are_listed_from_partitions(log_dir: Path) -> None:
    reader = LogReader(log_dir)
    assert reader.models() == ["churn", "other"]
    assert reader.has_logs("churn")
    assert not reader.has_logs("nope")
    assert LogReader(log_dir / "missing").models() == []


def test_values_are_reached_in_the_writers_layout(log_dir: Path) -> None:
    with LogReader(log_dir).session("churn") as session:
        age = session.input_sql("age", numeric=True)
        plan = session.input_sql("plan", numeric=False)
        vip = session.input_sql("vip", numeric=False)
        predict = session.output_sql("predict", numeric=False)
        proba = session.probability_sql(1, "1")
        rows = session.fetch(f"SELECT {age}, {plan}, {vip}, {predict}, {proba} FROM predictions ORDER BY request_id")
        assert rows == [(30.5, "pro", "true", "1", 0.8), (None, "basic", "false", "0", 0.1)]
        assert session.input_sql("nope", numeric=True) is not None  # JSON: absent keys read as null
        assert session.fetch(f"SELECT count({session.input_sql('nope', numeric=True)}) FROM predictions") == [(0,)]


def test_struct_shaped_logs_of_other_writers_are_read(tmp_path: Path) -> None:
    folder = tmp_path / "model=m" / "date=2024-05-01"
    folder.mkdir(parents=True)
    inputs = pa.StructArray.from_arrays([pa.array([1.5, float("nan")]), pa.array(["x", "y"])], names=["a", "b"])
    outputs = pa.StructArray.from_arrays(
        [pa.array([1, 0]), pa.array([[0.3, 0.7], [0.6, 0.4]], type=pa.list_(pa.float64()))],
        names=["predict", "predict_proba"],
    )
    pq.write_table(pa.table({"inputs": inputs, "outputs": outputs}), folder / "part-0.parquet")
    with LogReader(tmp_path).session("m") as session:
        a = session.input_sql("a", numeric=True)
        b = session.input_sql("b", numeric=False)
        proba = session.probability_sql(1, "1")
        assert session.fetch(f"SELECT {a}, {b}, {proba} FROM predictions") == [(1.5, "x", 0.7), (None, "y", 0.4)]
        assert session.input_sql("missing", numeric=True) is None


def test_the_session_reads_the_log_and_nothing_else(log_dir: Path, tmp_path: Path) -> None:
    secret = tmp_path / "secret.csv"
    secret.write_text("password\nhunter2\n")
    with LogReader(log_dir).session() as session:
        assert session.fetch("SELECT count(*) FROM predictions") == [(3,)]
        with pytest.raises(duckdb.PermissionException):
            session.fetch(f"SELECT * FROM read_csv('{secret}')")
        with pytest.raises(duckdb.InvalidInputException):
            session.fetch("SET enable_external_access = true")
        with pytest.raises(duckdb.Error):
            session.fetch("INSTALL httpfs")


def test_an_empty_log_still_binds_every_column(tmp_path: Path) -> None:
    with LogReader(tmp_path).session("churn") as session:
        assert session.empty
        where, params = session.scope(model="churn", version=1)
        assert session.fetch(f"SELECT count(*), max(latency_ms) FROM predictions WHERE {where}", params) == [(0, None)]


def test_an_unreadable_file_is_a_service_error(tmp_path: Path) -> None:
    folder = tmp_path / "model=m" / "date=2024-05-01"
    folder.mkdir(parents=True)
    (folder / "part-0.parquet").write_bytes(b"not parquet at all")
    with (
        pytest.raises(ServiceUnavailable, match="Cannot read the prediction log") as info,
        LogReader(tmp_path).session("m"),
    ):
        pass
    assert info.value.hint


@pytest.mark.parametrize("text", ["1", "1.0", " 2.50 ", "True", "FALSE", "spam", "007", "-0.0", "1e3", "nan", "inf"])
def test_sql_normalisation_agrees_with_python(text: str) -> None:
    con = duckdb.connect()
    (value,) = con.execute(f"SELECT {label_sql('t')} FROM (SELECT ?::VARCHAR AS t)", [text]).fetchone() or (None,)
    assert value == normalise_label(text)[0]
