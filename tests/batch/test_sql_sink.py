from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pytest
import sqlalchemy as sa

from modelport.batch.options import JobOptions
from modelport.batch.scoring import ChunkScorer, ScoredChunk
from modelport.batch.sinks import SinkContext
from modelport.batch.sources import SourceChunk
from modelport.batch.sql_sink import CHECKPOINT_TABLE, SqlSink
from modelport.core.errors import Conflict, InvalidName
from modelport.registry.runs import FINAL_CHUNK, ChunkCommit, RunStore
from modelport.runtime.predictor import Predictor

from .conftest import frame

RUN_A, RUN_B = "a" * 32, "b" * 32
NOW = datetime(2025, 1, 1, tzinfo=UTC)
Chunks = Callable[..., list[tuple[ScoredChunk, ChunkCommit]]]


@pytest.fixture
def chunks(predictor: Predictor) -> Chunks:
    def make(
        run_id: str, count: int, *, seed: int = 0, bad_row: int | None = None
    ) -> list[tuple[ScoredChunk, ChunkCommit]]:
        scorer = ChunkScorer(predictor, JobOptions(key=("id",)), run_id=run_id, clock=lambda: NOW, timer=lambda: 0.0)
        out = []
        for i in range(count):
            data = frame(10, seed=seed + i, start=i * 10)
            if bad_row is not None and i == 0:
                data["a"] = data["a"].map(str).astype(object)
                data.loc[bad_row, "a"] = "bad"
            chunk = SourceChunk(pa.Table.from_pandas(data, preserve_index=False), i * 10, {"rows": (i + 1) * 10})
            scored = scorer.score(i, chunk)
            out.append(
                (scored, ChunkCommit(i, 10, scored.output.num_rows, scored.rejects.num_rows, chunk.position, NOW))
            )
        return out

    return make


@pytest.fixture
def out_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'analytics.db'}"


def _rows(url: str, sql: str) -> list[tuple[object, ...]]:
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        rows = [tuple(r) for r in conn.execute(sa.text(sql))]
    engine.dispose()
    return rows


def _write(
    sink: SqlSink, store: RunStore, run_id: str, mode: str, items: list[tuple[ScoredChunk, ChunkCommit]]
) -> bool:
    sink.open(SinkContext(run_id, mode, ("id",), store))  # type: ignore[arg-type]
    shared = [sink.write(s, c) for s, c in items]
    sink.finish()
    sink.close()
    return all(shared)


def test_append_creates_a_typed_table_with_a_primary_key_and_commits_checkpoints_with_rows(
    out_url: str, store: RunStore, chunks: Chunks
) -> None:
    sink = SqlSink(out_url, "lead_scores")
    assert _write(sink, store, RUN_A, "append", chunks(RUN_A, 2, bad_row=4)) is False
    engine = sa.create_engine(out_url)
    inspector = sa.inspect(engine)
    assert inspector.get_pk_constraint("lead_scores")["constrained_columns"] == ["id"]
    types = {c["name"]: type(c["type"]).__name__ for c in inspector.get_columns("lead_scores")}
    assert types["id"] == "BIGINT"
    assert types["prediction"] == "BIGINT"
    assert types["scored_at"] == "DATETIME"
    engine.dispose()
    assert _rows(out_url, "SELECT count(*), count(DISTINCT id) FROM lead_scores") == [(19, 19)]
    assert _rows(out_url, "SELECT row, reason FROM lead_scores_rejects")[0][0] == 4
    checkpoints = _rows(out_url, f"SELECT chunk_index, rows_written FROM {CHECKPOINT_TABLE} ORDER BY 1")
    assert checkpoints == [(FINAL_CHUNK, 0), (0, 9), (1, 10)]
    assert sink.rejects_location.endswith("table lead_scores_rejects")
    reopened = SqlSink(out_url, "lead_scores")
    assert [c.index for c in reopened.open(SinkContext(RUN_A, "append", ("id",), store))] == [0, 1, FINAL_CHUNK]
    reopened.close()
    with pytest.raises(Conflict, match="upsert"):  # the same keys appended again
        _write(SqlSink(out_url, "lead_scores"), store, RUN_B, "append", chunks(RUN_B, 1))


def test_output_in_the_registry_database_shares_the_checkpoint_transaction(
    registry_url: str, store: RunStore, chunks: Chunks
) -> None:
    store.create_run(RUN_A, model_ref="lr", source="in", destination="out", options={}, now=NOW)
    assert _write(SqlSink(registry_url, "scores"), store, RUN_A, "append", chunks(RUN_A, 3)) is True
    assert [c.index for c in store.chunks(RUN_A)] == [0, 1, 2, FINAL_CHUNK]
    run = store.get_run(RUN_A)
    assert (run.rows_read, run.rows_written, run.chunks) == (30, 30, 3)
    assert _rows(registry_url, "SELECT count(*) FROM scores") == [(30,)]


def test_upsert_replaces_earlier_scores_of_the_same_key(out_url: str, store: RunStore, chunks: Chunks) -> None:
    _write(SqlSink(out_url, "scores"), store, RUN_A, "upsert", chunks(RUN_A, 2))
    _write(SqlSink(out_url, "scores"), store, RUN_B, "upsert", chunks(RUN_B, 1, seed=50))
    assert _rows(out_url, "SELECT run_id, count(*) FROM scores GROUP BY run_id ORDER BY 1") == [
        (RUN_A, 10),
        (RUN_B, 10),
    ]
    engine = sa.create_engine(out_url)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE loose (id BIGINT, prediction BIGINT)"))
    engine.dispose()
    with pytest.raises(Conflict, match="no primary key or unique constraint"):
        SqlSink(out_url, "loose").open(SinkContext(RUN_A, "upsert", ("id",), store))


def test_replace_builds_a_staging_table_and_swaps_it_in_at_the_end(
    out_url: str, store: RunStore, chunks: Chunks
) -> None:
    _write(SqlSink(out_url, "scores"), store, RUN_A, "replace", chunks(RUN_A, 2))
    sink = SqlSink(out_url, "scores")
    sink.open(SinkContext(RUN_B, "replace", ("id",), store))
    sink.write(*chunks(RUN_B, 1, seed=9)[0])
    assert _rows(out_url, "SELECT DISTINCT run_id FROM scores") == [(RUN_A,)]  # readers see the old table
    sink.finish()
    sink.close()
    assert _rows(out_url, "SELECT DISTINCT run_id, count(*) FROM scores") == [(RUN_B, 10)]
    tables = set(sa.inspect(sa.create_engine(out_url)).get_table_names())
    assert not any(t.startswith(("_mp_stage_", "_mp_old_")) for t in tables)


def test_existing_table_without_the_output_columns_is_refused(out_url: str, store: RunStore, chunks: Chunks) -> None:
    engine = sa.create_engine(out_url)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE scores (id BIGINT PRIMARY KEY, score FLOAT)"))
    engine.dispose()
    sink = SqlSink(out_url, "scores")
    sink.open(SinkContext(RUN_A, "append", ("id",), store))
    with pytest.raises(Conflict, match="no column"):
        sink.write(*chunks(RUN_A, 1)[0])
    sink.close()


@pytest.mark.parametrize("name", ["scores; DROP TABLE x", 'scores"', "a.b.c", "1scores", "x" * 64])
def test_hostile_table_names_are_rejected_before_any_sql(out_url: str, name: str) -> None:
    with pytest.raises(InvalidName, match="table name"):
        SqlSink(out_url, name)
    with pytest.raises(InvalidName, match="rejects table"):
        SqlSink(out_url, "scores", rejects_table="r; --")
