from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime

import pyarrow as pa
import pytest

from modelport.batch.engine import LocalEngine
from modelport.batch.scoring import REJECTS_SCHEMA, ScoredChunk
from modelport.batch.sources import SourceChunk
from modelport.core.errors import ServiceUnavailable, ValidationError


def _chunks(
    n: int, *, fail_at: int | None = None, closed: list[bool] | None = None
) -> Iterator[tuple[int, SourceChunk]]:
    try:
        for i in range(n):
            if i == fail_at:
                raise ServiceUnavailable("input database went away")
            yield i, SourceChunk(pa.table({"x": [i]}), i, {"rows": i + 1})
    finally:
        if closed is not None:
            closed.append(True)


def _score(index: int, chunk: SourceChunk) -> ScoredChunk:
    return ScoredChunk(index, 1, chunk.table, REJECTS_SCHEMA.empty_table(), chunk.position, datetime.now(UTC), 0.0)


@pytest.mark.parametrize("prefetch", [0, 1, 3])
def test_commits_every_chunk_in_order(prefetch: int) -> None:
    committed: list[int] = []
    threads: set[str] = set()

    def commit(chunk: ScoredChunk) -> None:
        committed.append(chunk.index)
        threads.add(threading.current_thread().name)

    LocalEngine(prefetch=prefetch).run(_chunks(25), _score, commit)
    assert committed == list(range(25))
    assert threads == ({"modelport-batch-writer"} if prefetch else {threading.current_thread().name})


def test_a_read_error_stops_after_committing_what_was_scored() -> None:
    committed: list[int] = []
    closed: list[bool] = []
    with pytest.raises(ServiceUnavailable, match="went away"):
        LocalEngine(prefetch=2).run(_chunks(10, fail_at=4, closed=closed), _score, lambda c: committed.append(c.index))
    assert committed == [0, 1, 2, 3]
    assert closed == [True]


def test_a_commit_error_stops_reading_and_scoring() -> None:
    scored: list[int] = []
    closed: list[bool] = []

    def score(index: int, chunk: SourceChunk) -> ScoredChunk:
        scored.append(index)
        return _score(index, chunk)

    def commit(chunk: ScoredChunk) -> None:
        if chunk.index == 2:
            raise ValidationError("too many rejects")

    with pytest.raises(ValidationError, match="too many rejects"):
        LocalEngine(prefetch=2).run(_chunks(1000, closed=closed), score, commit)
    assert len(scored) < 10
    assert closed == [True]


def test_a_scoring_error_is_raised_after_pending_commits() -> None:
    committed: list[int] = []

    def score(index: int, chunk: SourceChunk) -> ScoredChunk:
        if index == 3:
            raise RuntimeError("model crashed")
        return _score(index, chunk)

    with pytest.raises(RuntimeError, match="model crashed"):
        LocalEngine(prefetch=1).run(_chunks(10), score, lambda c: committed.append(c.index))
    assert committed == [0, 1, 2]


def test_several_scoring_threads_still_commit_in_chunk_order() -> None:
    committed: list[int] = []
    scorers: set[str] = set()

    def score(index: int, chunk: SourceChunk) -> ScoredChunk:
        scorers.add(threading.current_thread().name)
        threading.Event().wait(0.02 if index % 3 == 0 else 0.001)  # later chunks finish first
        return _score(index, chunk)

    LocalEngine(prefetch=2, workers=4).run(_chunks(30), score, lambda c: committed.append(c.index))
    assert committed == list(range(30))
    assert len(scorers) > 1
