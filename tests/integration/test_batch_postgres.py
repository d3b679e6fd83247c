"""Batch jobs on the local PostgreSQL: COPY-fast writes, every mode, kill-and-resume, a database lost mid-run.

Each test gets a fresh database from the ``pg_url`` fixture, which fails (never skips) under
``CI=true`` when PostgreSQL is unreachable.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from batch.conftest import bundle_dir, frame, predictor  # noqa: F401  (fixtures shared with the batch tests)
from batch.test_examples import check_lead_scoring, check_recommendations
from batch.test_kill_resume import CHUNK, ROWS, check_same_rows, start_and_kill
from modelport.batch.progress import ProgressEvent
from modelport.batch.spec import JobSpec, run_spec
from modelport.core.errors import ServiceUnavailable
from modelport.core.refs import ModelRef
from modelport.registry import db, schema
from modelport.registry.runs import RunStore
from modelport.runtime.predictor import Predictor

pytestmark = pytest.mark.integration


@pytest.fixture
def pg_store(pg_url: str) -> Iterator[RunStore]:
    """The run store in the same PostgreSQL database as the job's output (shared transactions)."""
    engine = db.create_engine(pg_url)
    schema.upgrade(engine, pg_url)
    yield RunStore(engine, pg_url)
    engine.dispose()


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[RunStore]:
    url = f"sqlite:///{tmp_path / 'registry.db'}"
    engine = db.create_engine(url)
    schema.upgrade(engine, url)
    yield RunStore(engine, url)
    engine.dispose()


@pytest.fixture
def load_model(predictor: Predictor) -> Callable[[ModelRef], Predictor]:  # noqa: F811
    return lambda ref: predictor


def _read(url: str, sql: str) -> pd.DataFrame:
    engine = sa.create_engine(url)
    try:
        return pd.read_sql_query(sa.text(sql), engine)
    finally:
        engine.dispose()


def test_a_postgres_table_scored_into_postgres_in_every_mode(
    pg_url: str, sqlite_store: RunStore, load_model: Callable[[ModelRef], Predictor]
) -> None:
    engine = sa.create_engine(pg_url)
    data = frame(5_000)
    data["a"] = data["a"].map(str)
    data.loc[17, "a"] = "unknown"
    data.to_sql("leads", engine, index=False)
    engine.dispose()
    upsert = JobSpec.build(
        "lr", pg_url, pg_url, input_table="leads", table="lead_scores", key="id", mode="upsert", proba=True,
        chunk_size=1_500, max_errors=1,
    )  # fmt: skip
    first = run_spec(upsert, load_model=load_model, store=sqlite_store)
    second = run_spec(upsert, load_model=load_model, store=sqlite_store)
    scores = _read(pg_url, "SELECT * FROM lead_scores")
    assert (first.rows_written, second.rows_rejected, len(scores)) == (4_999, 1, 4_999)
    assert set(scores["run_id"]) == {second.run_id}
    assert str(scores["scored_at"].dtype).startswith("datetime64")
    assert scores["scored_at"].dt.tz is not None
    rejects = _read(pg_url, "SELECT row, reason FROM lead_scores_rejects")
    assert sorted(rejects["row"]) == [17, 17]
    assert "unknown" in rejects["reason"][0]
    pk = sa.inspect(sa.create_engine(pg_url)).get_pk_constraint("lead_scores")["constrained_columns"]
    assert pk == ["id"]

    query = JobSpec.build(
        "lr", pg_url, pg_url, query="SELECT id, a, b, c FROM leads WHERE id < 1000", table="recent", key="id",
        mode="replace", max_errors=1,
    )  # fmt: skip
    run_spec(query, load_model=load_model, store=sqlite_store)
    replaced = run_spec(query, load_model=load_model, store=sqlite_store)
    recent = _read(pg_url, "SELECT run_id, count(*) AS n FROM recent GROUP BY run_id")
    assert recent.to_dict("records") == [{"run_id": replaced.run_id, "n": 999}]
    tables = sa.inspect(sa.create_engine(pg_url)).get_table_names()
    assert "modelport_batch_chunks" in tables
    assert not [t for t in tables if t.startswith("_mp_")]


def test_sigkill_then_resume_on_postgres_equals_an_uninterrupted_run(
    tmp_path: Path,
    pg_url: str,
    pg_store: RunStore,
    bundle_dir: Path,  # noqa: F811
    predictor: Predictor,  # noqa: F811
) -> None:
    source = tmp_path / "leads.parquet"
    frame(ROWS, seed=11).to_parquet(source, row_group_size=50_000)
    spec = JobSpec.build("lr", str(source), pg_url, table="scores", key="id", chunk_size=CHUNK, mode="append")
    run_id = start_and_kill(spec, bundle=bundle_dir, registry=pg_url, store=pg_store, after_chunks=3)
    resumed = run_spec(spec.resuming(run_id), load_model=lambda ref: predictor, store=pg_store)
    assert (resumed.run_id, resumed.rows_written, resumed.chunks) == (run_id, ROWS, ROWS // CHUNK)
    clean = JobSpec.build("lr", str(source), pg_url, table="clean", key="id", chunk_size=CHUNK)
    run_spec(clean, load_model=lambda ref: predictor, store=pg_store)
    got = _read(pg_url, "SELECT id, prediction, run_id FROM scores")
    check_same_rows(got, _read(pg_url, "SELECT id, prediction FROM clean"))
    assert [c.index for c in pg_store.chunks(run_id)][-1] == -1  # finalised in the run store itself


class Proxy:
    """A TCP proxy to PostgreSQL that can be cut, as if the database went away."""

    def __init__(self, listen_port: int = 0, target_port: int = 5432) -> None:
        self.target_port = target_port
        self.server = socket.create_server(("127.0.0.1", listen_port))
        self.port = self.server.getsockname()[1]
        self.sockets: list[socket.socket] = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            self.sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        with contextlib.suppress(OSError):
            self.server.shutdown(socket.SHUT_RDWR)  # wakes the accepting thread
        self.server.close()
        for s in self.sockets:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()


def test_a_database_lost_mid_run_fails_clearly_keeps_committed_chunks_and_resumes(
    tmp_path: Path, pg_url: str, sqlite_store: RunStore, load_model: Callable[[ModelRef], Predictor]
) -> None:
    source = tmp_path / "leads.parquet"
    frame(20_000).to_parquet(source)
    proxy = Proxy()
    through_proxy = pg_url.replace("postgres@127.0.0.1:5432", f"postgres:pw-not-shown@127.0.0.1:{proxy.port}")
    spec = JobSpec.build("lr", str(source), through_proxy, table="scores", key="id", chunk_size=2_000, prefetch=0)

    def cut_after_three(event: ProgressEvent) -> None:
        if event.kind == "chunk" and event.chunks == 3:
            proxy.cut()

    with pytest.raises(ServiceUnavailable, match="output database") as info:
        run_spec(spec, load_model=load_model, store=sqlite_store, progress=cut_after_three)
    assert "pw-not-shown" not in str(info.value)
    failed = sqlite_store.list_runs()[0]
    assert (failed.status, failed.chunks, failed.error_type) == ("failed", 3, "ServiceUnavailable")
    assert f"--resume {failed.run_id}" in (info.value.hint or "")
    assert len(_read(pg_url, "SELECT id FROM scores")) == 6_000
    with pytest.raises(ServiceUnavailable):  # still down at the start of the retry
        run_spec(spec.resuming(failed.run_id), load_model=load_model, store=sqlite_store)
    back = Proxy(listen_port=proxy.port)  # the database is back, at the same address
    try:
        resumed = run_spec(spec.resuming(failed.run_id), load_model=load_model, store=sqlite_store)
    finally:
        back.cut()
    assert (resumed.run_id, resumed.resumed_from_chunk, resumed.rows_written) == (failed.run_id, 3, 20_000)
    ids = _read(pg_url, "SELECT id FROM scores")["id"]
    assert ids.is_unique
    assert sorted(ids) == list(range(20_000))


def test_the_examples_run_on_postgres(pg_url: str, tmp_path: Path) -> None:
    check_lead_scoring(pg_url, tmp_path / "leads")
    check_recommendations(pg_url, tmp_path / "recs")
