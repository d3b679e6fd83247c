"""Kill a batch job with SIGKILL in the middle, resume it, and compare with an uninterrupted run.

The job runs in a subprocess that slows down after each committed chunk, so the kill lands
while chunks are being read, scored and committed. The resumed run must leave exactly the rows
an uninterrupted run writes: no duplicate, no gap, same predictions.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from modelport.batch.options import JobOptions
from modelport.batch.spec import JobSpec, run_spec
from modelport.registry.runs import RunStore
from modelport.runtime.predictor import Predictor

from .conftest import frame

ROWS = 2_000_000  # a multi-million-row job, as the issue asks
CHUNK = 100_000

JOB_SCRIPT = """
import json, sys, time
from modelport.batch.spec import JobSpec, run_spec
from modelport.bundle.io import load_bundle
from modelport.registry import db
from modelport.registry.runs import RunStore
from modelport.runtime.predictor import Predictor

args = json.loads(sys.argv[1])
predictor = Predictor(load_bundle(args["bundle"]))
store = RunStore(db.create_engine(args["registry"]), args["registry"])

def slow_down(event):
    if event.kind == "chunk":
        time.sleep(0.15)

spec = JobSpec.model_validate(args["spec"])
run_spec(spec, load_model=lambda ref: predictor, store=store, run_id=args["run_id"], progress=slow_down)
"""


def start_and_kill(spec: JobSpec, *, bundle: Path, registry: str, store: RunStore, after_chunks: int) -> str:
    """Start ``spec`` in a subprocess, SIGKILL it once ``after_chunks`` chunks are committed; return the run id."""
    run_id = uuid.uuid4().hex
    args = {"bundle": str(bundle), "registry": registry, "spec": spec.model_dump(mode="json"), "run_id": run_id}
    process = subprocess.Popen([sys.executable, "-c", JOB_SCRIPT, json.dumps(args)], stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            try:
                if store.get_run(run_id).chunks >= after_chunks:
                    break
            except Exception:  # not recorded yet
                pass
            if process.poll() is not None:
                raise AssertionError(f"the job ended before it was killed: {process.stderr.read().decode()[-2000:]}")  # type: ignore[union-attr]
            time.sleep(0.02)
        else:
            raise AssertionError("the job committed nothing within 60 s")
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.wait()
        process.stderr.close()  # type: ignore[union-attr]
    assert process.returncode == -signal.SIGKILL
    killed = store.get_run(run_id)
    assert killed.status == "running"
    assert 0 < killed.chunks < ROWS // CHUNK
    return run_id


def check_same_rows(got: pd.DataFrame, want: pd.DataFrame) -> None:
    assert got["id"].is_unique, "duplicate rows after resume"
    assert sorted(got["id"]) == list(range(ROWS)), "missing rows after resume"
    merged = got.merge(want, on="id", suffixes=("", "_want"))
    assert (merged["prediction"] == merged["prediction_want"]).all()


def _sql(url: str, table: str) -> pd.DataFrame:
    engine = sa.create_engine(url)
    data = pd.read_sql_query(sa.text(f"SELECT id, prediction, run_id FROM {table}"), engine)
    engine.dispose()
    return data


@pytest.fixture
def big_input(tmp_path: Path) -> Path:
    path = tmp_path / "leads.parquet"
    frame(ROWS, seed=11).to_parquet(path, row_group_size=50_000)
    return path


@pytest.mark.parametrize("destination", ["registry-sqlite", "other-sqlite", "parquet"])
def test_sigkill_then_resume_equals_an_uninterrupted_run(
    destination: str,
    tmp_path: Path,
    big_input: Path,
    bundle_dir: Path,
    predictor: Predictor,
    registry_url: str,
    store: RunStore,
) -> None:
    if destination == "registry-sqlite":
        output, table, read = registry_url, "scores", lambda name: _sql(registry_url, name)
    elif destination == "other-sqlite":
        url = f"sqlite:///{tmp_path / 'analytics.db'}"
        output, table, read = url, "scores", lambda name: _sql(url, name)
    else:
        output, table = str(tmp_path / "scores"), None
        read = lambda name: pd.read_parquet(tmp_path / name)  # noqa: E731
    spec = JobSpec.build("lr", str(big_input), output, table=table, key="id", chunk_size=CHUNK, mode="append")
    run_id = start_and_kill(spec, bundle=bundle_dir, registry=registry_url, store=store, after_chunks=3)

    resumed = run_spec(spec.resuming(run_id), load_model=lambda ref: predictor, store=store)
    assert resumed.run_id == run_id
    assert resumed.resumed_from_chunk >= 3
    assert (resumed.rows_read, resumed.rows_written, resumed.chunks) == (ROWS, ROWS, ROWS // CHUNK)
    record = store.get_run(run_id)
    assert (record.status, record.rows_written, record.attempts) == ("completed", ROWS, 2)

    if table is None:
        clean = spec.model_copy(update={"output": spec.output.model_copy(update={"uri": str(tmp_path / "clean")})})
        run_spec(clean, load_model=lambda ref: predictor, store=store)
        got, want = read("scores"), read("clean")
    else:
        clean = JobSpec.build("lr", str(big_input), output, table="clean", key="id", chunk_size=CHUNK)
        run_spec(clean, load_model=lambda ref: predictor, store=store)
        got, want = read("scores"), read("clean")
    check_same_rows(got, want)
    assert set(got["run_id"]) == {run_id}
    assert JobOptions.model_validate(record.options | {"resume": None}).chunk_size == CHUNK
