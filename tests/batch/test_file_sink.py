from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pandas as pd
import pyarrow as pa
import pytest

from modelport.batch.file_sink import MANIFEST, FileSink
from modelport.batch.options import JobOptions
from modelport.batch.scoring import ChunkScorer, ScoredChunk
from modelport.batch.sinks import SinkContext, resolve_mode
from modelport.batch.sources import SourceChunk
from modelport.core.errors import Conflict, Unsupported
from modelport.registry.runs import FINAL_CHUNK, ChunkCommit, RunStore
from modelport.runtime.predictor import Predictor

from .conftest import frame

RUN_A, RUN_B = "a" * 32, "b" * 32
NOW = datetime(2025, 1, 1, tzinfo=UTC)

Chunks = Callable[[str, int], list[tuple[ScoredChunk, ChunkCommit]]]


@pytest.fixture
def chunks(predictor: Predictor) -> Chunks:
    """``count`` scored chunks of 10 rows for run ``run_id``; chunk 1 has one rejected row."""

    def make(run_id: str, count: int) -> list[tuple[ScoredChunk, ChunkCommit]]:
        scorer = ChunkScorer(predictor, JobOptions(key=("id",)), run_id=run_id, clock=lambda: NOW, timer=lambda: 0.0)
        out = []
        for i in range(count):
            data = frame(10, seed=i, start=i * 10)
            if i == 1:
                data["a"] = data["a"].map(str).astype(object)
                data.loc[3, "a"] = "bad"
            chunk = SourceChunk(pa.Table.from_pandas(data, preserve_index=False), i * 10, {"rows": (i + 1) * 10})
            scored = scorer.score(i, chunk)
            commit = ChunkCommit(i, 10, scored.output.num_rows, scored.rejects.num_rows, chunk.position, NOW)
            out.append((scored, commit))
        return out

    return make


def _write_all(sink: FileSink, store: RunStore, run_id: str, items: list[tuple[ScoredChunk, ChunkCommit]]) -> None:
    assert sink.open(SinkContext(run_id, resolve_mode(sink, None, ("id",)), ("id",), store)) == []
    for scored, commit in items:
        assert sink.write(scored, commit) is False
    sink.finish()
    sink.close()


@pytest.mark.parametrize("name", ["scores.csv", "scores.parquet"])
def test_single_file_appears_whole_at_the_end(tmp_path: Path, store: RunStore, chunks: Chunks, name: str) -> None:
    target = tmp_path / name
    sink = FileSink(target)
    items = chunks(RUN_A, 3)
    sink.open(SinkContext(RUN_A, "replace", ("id",), store))
    for scored, commit in items[:2]:
        sink.write(scored, commit)
    assert not target.exists()  # nothing visible before finish
    sink.write(*items[2])
    sink.finish()
    sink.close()
    data = pd.read_csv(target) if name.endswith(".csv") else pd.read_parquet(target)
    assert data["id"].tolist() == [i for i in range(30) if i != 13]
    assert list(data.columns) == ["id", "prediction", "model", "version", "run_id", "scored_at"]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    rejects = pd.read_csv(tmp_path / "scores.rejects.csv")
    assert rejects["row"].tolist() == [13]
    assert sink.rejects_location == str(tmp_path / "scores.rejects.csv")


def test_folder_append_adds_runs_and_the_manifest_lists_every_part(
    tmp_path: Path, store: RunStore, chunks: Chunks
) -> None:
    folder = tmp_path / "scores"
    sink = FileSink(folder, format="csv")
    with pytest.raises(Unsupported, match="upsert"):
        resolve_mode(sink, "upsert", ("id",))
    for run in (RUN_A, RUN_B):
        sink = FileSink(folder)
        sink.open(SinkContext(run, "append", ("id",), store))
        for scored, commit in chunks(run, 2):
            sink.write(scored, commit)
        sink.finish()
        sink.close()
    data = pd.read_parquet(folder)
    assert len(data) == 38
    assert data.groupby("run_id").size().to_dict() == {RUN_A: 19, RUN_B: 19}
    manifest = orjson.loads((folder / MANIFEST).read_bytes())
    assert len(manifest["commits"]) == 4
    assert manifest["finalized"] == [RUN_A, RUN_B]
    assert (tmp_path / "scores.rejects" / f"{RUN_B}.csv").exists()


def test_folder_replace_swaps_whole_folders_and_never_touches_a_foreign_one(
    tmp_path: Path, store: RunStore, chunks: Chunks
) -> None:
    folder = tmp_path / "scores"
    _write_all(FileSink(folder), store, RUN_A, chunks(RUN_A, 2))
    sink = FileSink(folder)
    sink.open(SinkContext(RUN_B, "replace", ("id",), store))
    sink.write(*chunks(RUN_B, 1)[0])
    assert set(pd.read_parquet(folder)["run_id"]) == {RUN_A}  # readers still see the old output
    sink.finish()
    sink.close()
    assert set(pd.read_parquet(folder)["run_id"]) == {RUN_B}
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(Conflict, match="did not write"):
        FileSink(foreign).open(SinkContext(RUN_A, "replace", (), store))
    with pytest.raises(Unsupported, match="folder to append"):
        resolve_mode(FileSink(tmp_path / "x.csv"), "append", ())


def test_reopening_a_run_returns_its_commits_and_drops_uncommitted_leftovers(
    tmp_path: Path, store: RunStore, chunks: Chunks
) -> None:
    target = tmp_path / "scores.csv"
    items = chunks(RUN_A, 3)
    sink = FileSink(target)
    sink.open(SinkContext(RUN_A, "replace", ("id",), store))
    sink.write(*items[0])
    sink.write(*items[1])
    work = tmp_path / f".scores.csv.{RUN_A}.parts"
    committed_rejects = (tmp_path / "scores.rejects.csv").stat().st_size
    # a crash in the middle of chunk 2: its part renamed, rejects appended, manifest not yet rewritten
    (work / f"part-{RUN_A[:12]}-000002.csv").write_text("1,2,3\n")
    (work / ".tmp-part-x.csv").write_text("partial")
    with (tmp_path / "scores.rejects.csv").open("a") as handle:
        handle.write("half a row")
    again = FileSink(target)
    commits = again.open(SinkContext(RUN_A, "replace", ("id",), store))
    assert [c.index for c in commits] == [0, 1]
    assert commits[1].position == {"rows": 20}
    assert sorted(p.name for p in work.iterdir()) == sorted(
        [MANIFEST, f"part-{RUN_A[:12]}-000000.csv", f"part-{RUN_A[:12]}-000001.csv"]
    )
    assert (tmp_path / "scores.rejects.csv").stat().st_size == committed_rejects
    again.write(*items[2])
    again.finish()
    final = FileSink(target).open(SinkContext(RUN_A, "replace", ("id",), store))
    assert final[-1].index == FINAL_CHUNK  # a crash after finish: the next attempt only marks completion
    again.close()
    assert pd.read_csv(target)["id"].tolist() == [i for i in range(30) if i != 13]
