from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from modelport.batch.file_sink import FileSink
from modelport.batch.file_source import FileSource
from modelport.batch.job import owner_is_gone, owner_token, run_job
from modelport.batch.options import JobOptions
from modelport.batch.progress import ProgressEvent
from modelport.batch.runlog import RunLog
from modelport.batch.scoring import ScoredChunk
from modelport.batch.sql_sink import SqlSink
from modelport.core.errors import Conflict, ServiceUnavailable, ValidationError
from modelport.core.refs import ModelRef
from modelport.registry.runs import ChunkCommit, RunStore
from modelport.runtime.predictor import Predictor
from modelport.runtime.predlog import PredictionRecord

from .conftest import FEATURES, frame


class FlakySink(SqlSink):
    """A SQL sink whose database 'goes away' after ``fail_after`` chunks."""

    def __init__(self, *args: Any, fail_after: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fail_after = fail_after
        self.writes = 0

    def write(self, chunk: ScoredChunk, commit: ChunkCommit) -> bool:
        if self.writes == self.fail_after:
            raise ServiceUnavailable("The output database sqlite:///x is unavailable: connection lost")
        self.writes += 1
        return super().write(chunk, commit)


@pytest.fixture
def parquet_input(tmp_path: Path) -> Path:
    path = tmp_path / "leads.parquet"
    frame(1_000, seed=5).to_parquet(path, row_group_size=250)
    return path


def _factory(predictor: Predictor) -> Callable[[ModelRef | None], Predictor]:
    return lambda pinned: predictor


def _table(url: str, table: str) -> pd.DataFrame:
    engine = sa.create_engine(url)
    data = pd.read_sql_table(table, engine)
    engine.dispose()
    return data


def test_a_run_is_recorded_and_reports_progress(
    tmp_path: Path, parquet_input: Path, predictor: Predictor, store: RunStore
) -> None:
    events: list[ProgressEvent] = []
    result = run_job(
        _factory(predictor),
        FileSource(parquet_input),
        FileSink(tmp_path / "scores.parquet"),
        JobOptions(chunk_size=300, key=("id",)),
        store,
        model_ref="lr@production",
        progress=events.append,
    )
    assert (result.rows_read, result.rows_written, result.rows_rejected, result.chunks) == (1000, 1000, 0, 4)
    assert result.status == "completed"
    assert result.rejects is None
    assert result.resumed_from_chunk == 0
    assert [e.kind for e in events] == ["start", "chunk", "chunk", "chunk", "chunk", "end"]
    assert events[0].total_rows == 1000
    assert events[-1].status == "completed"
    assert events[2].rows_read == 600
    assert events[2].eta_s is not None
    run = store.get_run(result.run_id)
    assert (run.status, run.model_ref, run.model_name, run.chunks, run.rows_written) == (
        "completed",
        "lr@production",
        "lr",
        4,
        1000,
    )
    assert run.options["chunk_size"] == 300
    assert run.ended_at is not None
    assert run.owner is None
    scores = pd.read_parquet(tmp_path / "scores.parquet")
    np.testing.assert_array_equal(scores["prediction"], predictor.predict(frame(1_000, seed=5)[FEATURES]))
    assert result.to_dict()["rows_per_s"] >= 0


def test_a_failed_run_resumes_from_its_last_committed_chunk_with_no_gap_or_duplicate(
    tmp_path: Path, parquet_input: Path, predictor: Predictor, store: RunStore
) -> None:
    out = f"sqlite:///{tmp_path / 'out.db'}"
    options = JobOptions(chunk_size=130, key=("id",))
    with pytest.raises(ServiceUnavailable) as info:
        run_job(_factory(predictor), FileSource(parquet_input), FlakySink(out, "scores", fail_after=3), options, store)
    failed = store.list_runs()[0]
    assert failed.status == "failed"
    assert failed.chunks == 3
    assert failed.error_type == "ServiceUnavailable"
    assert f"--resume {failed.run_id}" in (info.value.hint or "")
    assert len(_table(out, "scores")) == 390
    resumed = run_job(
        _factory(predictor),
        FileSource(parquet_input),
        SqlSink(out, "scores"),
        JobOptions(chunk_size=999, resume=failed.run_id),  # the stored chunking wins
        store,
    )
    assert resumed.run_id == failed.run_id
    assert resumed.resumed_from_chunk == 3
    assert (resumed.rows_read, resumed.rows_written, resumed.chunks, resumed.attempt_rows) == (1000, 1000, 8, 610)
    assert store.get_run(failed.run_id).attempts == 2
    fresh = run_job(_factory(predictor), FileSource(parquet_input), SqlSink(out, "again"), options, store)
    got, want = _table(out, "scores"), _table(out, "again")
    assert got["id"].is_unique
    assert sorted(got["id"]) == list(range(1000))
    merged = got.merge(want, on="id", suffixes=("", "_fresh"))
    assert len(merged) == 1000
    assert (merged["prediction"] == merged["prediction_fresh"]).all()
    assert fresh.run_id != failed.run_id


def test_resume_is_refused_when_it_does_not_match_the_run(
    tmp_path: Path, parquet_input: Path, predictor: Predictor, versioned: Callable[[int], Predictor], store: RunStore
) -> None:
    out = f"sqlite:///{tmp_path / 'out.db'}"
    v3 = versioned(3)
    with pytest.raises(ServiceUnavailable):
        run_job(
            _factory(v3),
            FileSource(parquet_input),
            FlakySink(out, "scores", fail_after=1),
            JobOptions(chunk_size=200),
            store,
        )
    run_id = store.list_runs()[0].run_id
    assert store.get_run(run_id).model_version == 3
    again = JobOptions(resume=run_id)
    with pytest.raises(Conflict, match="same input and output"):
        run_job(_factory(v3), FileSource(parquet_input), SqlSink(out, "other"), again, store)
    pinned: list[ModelRef | None] = []

    def load_v4(ref: ModelRef | None) -> Predictor:
        pinned.append(ref)
        return versioned(4)

    with pytest.raises(Conflict, match="version it started with"):
        run_job(load_v4, FileSource(parquet_input), SqlSink(out, "scores"), again, store)
    assert pinned == [ModelRef(name="lr", version=3)]
    done = run_job(_factory(v3), FileSource(parquet_input), SqlSink(out, "scores"), again, store)
    assert done.version == 3
    assert done.rows_written == 1000
    with pytest.raises(Conflict, match="completed already"):
        run_job(_factory(v3), FileSource(parquet_input), SqlSink(out, "scores"), again, store)


def test_too_many_rejects_fail_the_run_saying_how_many_and_where(
    tmp_path: Path, predictor: Predictor, store: RunStore
) -> None:
    data = frame(100)
    data["a"] = data["a"].map(str)
    for row in (5, 50, 51):
        data.loc[row, "a"] = "n/a"
    data.to_csv(tmp_path / "leads.csv", index=False)
    target = tmp_path / "scores.csv"

    def job(**options: Any) -> Any:
        return run_job(
            _factory(predictor),
            FileSource(tmp_path / "leads.csv"),
            FileSink(target),
            JobOptions(chunk_size=40, **options),
            store,
        )

    with pytest.raises(ValidationError, match=r"3 row\(s\) were rejected, more than --max-errors 1") as info:
        job(max_errors=1)
    assert str(tmp_path / "scores.rejects.csv") in str(info.value)
    run = store.list_runs()[0]
    assert run.status == "failed"
    assert run.rejects == str(tmp_path / "scores.rejects.csv")
    assert pd.read_csv(tmp_path / "scores.rejects.csv")["row"].tolist() == [5, 50, 51]
    assert not target.exists()
    result = job(max_errors=3, resume=run.run_id)
    assert (result.rows_written, result.rows_rejected, result.rejects) == (97, 3, str(tmp_path / "scores.rejects.csv"))
    assert len(pd.read_csv(target)) == 97


def test_a_run_held_by_a_live_process_is_not_taken_over_but_a_dead_ones_is(
    tmp_path: Path, parquet_input: Path, predictor: Predictor, store: RunStore
) -> None:
    out = tmp_path / "scores.parquet"
    with pytest.raises(ServiceUnavailable):
        run_job(
            _factory(predictor), FileSource(parquet_input), _FailingFileSink(out), JobOptions(chunk_size=300), store
        )
    run = store.list_runs()[0]
    live = owner_token()
    store.claim_run(run.run_id, live, now=run.started_at, lease_until=run.started_at.replace(year=2999))
    with pytest.raises(Conflict, match="is being run by"):
        run_job(_factory(predictor), FileSource(parquet_input), FileSink(out), JobOptions(resume=run.run_id), store)
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True
    )
    ghost = f"{live.split(':')[0]}:{dead.stdout.strip()}:deadbeef"
    assert owner_is_gone(ghost)
    assert not owner_is_gone(live)
    assert not owner_is_gone("elsewhere:1:x")
    store.finish_run(run.run_id, status="failed", now=run.started_at)
    store.claim_run(run.run_id, ghost, now=run.started_at, lease_until=run.started_at.replace(year=2999))
    result = run_job(
        _factory(predictor), FileSource(parquet_input), FileSink(out), JobOptions(resume=run.run_id), store
    )
    assert result.rows_written == 1000


class _FailingFileSink(FileSink):
    def write(self, chunk: ScoredChunk, commit: ChunkCommit) -> bool:
        if chunk.index == 1:
            raise ServiceUnavailable("disk went away")
        return super().write(chunk, commit)


def test_an_unreachable_output_database_fails_clearly_and_the_run_can_be_resumed(
    tmp_path: Path, parquet_input: Path, predictor: Predictor, store: RunStore
) -> None:
    url = "postgresql://scorer:hunter2@127.0.0.1:1/analytics"
    with pytest.raises(ServiceUnavailable, match="output database") as info:
        run_job(_factory(predictor), FileSource(parquet_input), SqlSink(url, "scores"), JobOptions(), store)
    assert "hunter2" not in str(info.value)
    run = store.list_runs()[0]
    assert run.status == "failed"
    assert "hunter2" not in (run.error or "")
    assert "hunter2" not in run.destination
    assert "scorer:***@" in run.destination


class _Records:
    def __init__(self) -> None:
        self.records: list[PredictionRecord] = []

    def log(self, record: PredictionRecord) -> bool:
        self.records.append(record)
        return True


def test_runs_write_a_run_record_a_bounded_sample_and_rejected_rows_to_the_prediction_log(
    tmp_path: Path, versioned: Callable[[int], Predictor], store: RunStore
) -> None:
    data = frame(2_000)
    data["b"] = data["b"].astype(object)
    data.loc[7, "b"] = None
    data.to_parquet(tmp_path / "in.parquet")
    writer = _Records()
    result = run_job(
        _factory(versioned(2)),
        FileSource(tmp_path / "in.parquet"),
        FileSink(tmp_path / "out"),
        JobOptions(chunk_size=100, max_errors=5, sample_rows=30),
        store,
        runlog=RunLog(writer, sample_rows=30),
    )
    kinds = [(r.kind, r.status) for r in writer.records]
    assert kinds.count(("prediction", "ok")) == 30
    assert kinds.count(("prediction", "error")) == 1
    assert kinds[-1] == ("run", "ok")
    sample = [r for r in writer.records if r.kind == "prediction" and r.status == "ok"]
    assert len({r.row // 100 for r in sample}) >= 10  # spread over chunks
    assert all(r.source == f"batch:{result.run_id}" and r.request_id == result.run_id for r in writer.records)
    assert sample[0].version == 2
    assert set(sample[0].inputs or {}) == set(FEATURES)
    error = next(r for r in writer.records if r.status == "error")
    assert error.row == 7
    assert "column 'b'" in (error.error or "")
    run_record = writer.records[-1]
    assert run_record.outputs == {"rows_read": 2000, "rows_written": 1999, "rows_rejected": 1, "chunks": 20}


@pytest.mark.parametrize(("workers", "backend"), [(2, "SequentialBackend"), (1, "LokyBackend")])
def test_scoring_threads_run_joblib_models_sequentially_within_each_chunk(
    tmp_path: Path,
    parquet_input: Path,
    predictor: Predictor,
    store: RunStore,
    monkeypatch: pytest.MonkeyPatch,
    workers: int,
    backend: str,
) -> None:
    from joblib.parallel import get_active_backend

    seen: list[str] = []
    adapter = predictor.adapter
    predict = adapter.predict

    def spy(data: object) -> object:
        seen.append(type(get_active_backend()[0]).__name__)
        return predict(data)

    monkeypatch.setattr(adapter, "predict", spy)
    result = run_job(
        _factory(predictor),
        FileSource(parquet_input),
        FileSink(tmp_path / "scores.parquet"),
        JobOptions(chunk_size=300, key=("id",), workers=workers),
        store,
    )
    assert result.rows_written == 1000
    assert seen == [backend] * 4
    scores = pd.read_parquet(tmp_path / "scores.parquet")
    np.testing.assert_array_equal(scores["prediction"], predict(frame(1_000, seed=5)[FEATURES]))


def test_a_run_that_committed_nothing_does_not_suggest_resuming(
    tmp_path: Path, predictor: Predictor, store: RunStore
) -> None:
    from modelport.core.errors import NotFound

    missing = tmp_path / "nope.parquet"
    with pytest.raises(NotFound) as info:
        run_job(_factory(predictor), FileSource(missing), FileSink(tmp_path / "out.parquet"), JobOptions(), store)
    assert "--resume" not in (info.value.hint or "")
    assert "Nothing was committed" in (info.value.hint or "")
