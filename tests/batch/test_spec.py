from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from modelport.batch.database import is_database_url, same_database, translate
from modelport.batch.file_sink import FileSink
from modelport.batch.file_source import FileSource
from modelport.batch.spec import JobSpec, SinkSpec, SourceSpec, run_spec
from modelport.batch.sql_sink import SqlSink
from modelport.batch.sql_source import SqlSource
from modelport.core.errors import BadRequest, Conflict, InvalidName, ServiceUnavailable, Unsupported, ValidationError
from modelport.core.refs import ModelRef
from modelport.registry.runs import RunStore
from modelport.runtime.predictor import Predictor

from .conftest import frame


def test_user_strings_become_the_right_sources_and_sinks(tmp_path: Path) -> None:
    assert isinstance(SourceSpec(uri="leads/*.csv").open(), FileSource)
    assert isinstance(SourceSpec(uri="file:///data/leads.parquet").open(), FileSource)
    assert isinstance(SourceSpec(uri="postgresql://u@h/db", table="leads").open(), SqlSource)
    assert isinstance(SinkSpec(uri="scores.csv").open(), FileSink)
    assert isinstance(SinkSpec(uri="sqlite:///x.db", table="scores").open(), SqlSink)
    assert is_database_url("postgresql+psycopg://u@h/db")
    assert not is_database_url("s3://bucket/x.csv")


def test_mismatched_arguments_get_clear_errors() -> None:
    with pytest.raises(BadRequest, match="apply to database inputs"):
        SourceSpec(uri="leads.csv", table="leads").open()
    with pytest.raises(BadRequest, match="needs a table name") as info:
        SinkSpec(uri="postgresql://u:pw@h/db").open()
    assert "pw" not in str(info.value)
    assert "--table" in (info.value.hint or "")
    with pytest.raises(BadRequest, match="--table applies to database outputs"):
        SinkSpec(uri="scores.csv", table="scores").open()
    with pytest.raises(Unsupported, match="s3://"):
        SourceSpec(uri="s3://bucket/leads.csv").open()
    with pytest.raises(Unsupported, match="Unknown output format"):
        FileSink("out", format="xlsx")
    with pytest.raises(InvalidName):
        JobSpec.build("Leads Model", "in.csv", "out.csv")
    with pytest.raises(ValidationError, match="Invalid input format"):
        JobSpec.build("leads", "in.csv", "out.csv", input_format="xml")
    with pytest.raises(ValidationError, match="chunk_size"):
        JobSpec.build("leads", "in.csv", "out.csv", chunk_size=-1)


def test_same_database_and_error_translation(tmp_path: Path, store: RunStore, registry_url: str) -> None:
    assert same_database(registry_url, store.engine)
    assert same_database(f"sqlite:///{tmp_path}/../{tmp_path.name}/registry.db", store.engine)
    assert not same_database(f"sqlite:///{tmp_path / 'other.db'}", store.engine)
    url = "postgresql://bi:topsecret@db.internal/crm"
    error = translate(
        sa.exc.OperationalError("connect", {}, Exception("could not connect to topsecret host")),
        url,
        what="x",
        run_id="r1",
    )
    assert isinstance(error, ServiceUnavailable)
    assert "topsecret" not in str(error)
    assert "--resume r1" in (error.hint or "")
    conflict = translate(sa.exc.IntegrityError("insert", {}, Exception("duplicate key")), url, what="x")
    assert isinstance(conflict, Conflict)
    assert "upsert" in (conflict.hint or "")
    bad = translate(sa.exc.OperationalError("select", {}, Exception("no such table: leads")), url, what="x")
    assert isinstance(bad, ValidationError)


def test_run_spec_scores_a_database_table_into_another_and_jsonl_into_csv(
    tmp_path: Path, predictor: Predictor, store: RunStore, load_model: Callable[[ModelRef], Predictor]
) -> None:
    crm = f"sqlite:///{tmp_path / 'crm.db'}"
    engine = sa.create_engine(crm)
    frame(120).to_sql("leads", engine, index=False)
    spec = JobSpec.build(
        str(tmp_path),
        crm,
        crm,
        input_table="leads",
        table="lead_scores",
        key="id",
        mode="upsert",
        proba=True,
        chunk_size=50,
    )
    first = run_spec(spec, load_model=load_model, store=store)
    second = run_spec(spec, load_model=load_model, store=store)
    scores = pd.read_sql_table("lead_scores", engine)
    engine.dispose()
    assert (first.chunks, second.rows_written, len(scores)) == (3, 120, 120)
    assert set(scores["run_id"]) == {second.run_id}
    assert {"proba_0", "proba_1"} <= set(scores.columns)
    frame(30).to_json(tmp_path / "leads.jsonl", orient="records", lines=True)
    result = run_spec(
        JobSpec.build("lr", str(tmp_path / "leads.jsonl"), str(tmp_path / "s.csv"), include="a"),
        load_model=load_model,
        store=store,
    )
    out = pd.read_csv(tmp_path / "s.csv")
    assert result.rows_written == 30
    assert list(out.columns[:2]) == ["a", "prediction"]
    assert store.get_run(result.run_id).source == str(tmp_path / "leads.jsonl")
