"""The run store (``modelport.registry.runs``) as the batch layer uses it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from modelport.core.errors import Conflict, NotFound
from modelport.registry.runs import ChunkCommit, RunStore

NOW = datetime(2025, 5, 1, 12, 0, tzinfo=UTC)


def _run(store: RunStore, run_id: str, **kwargs: object) -> None:
    store.create_run(
        run_id,
        model_ref="leads@production",
        source="postgresql://bi:secret@db/crm table leads",
        destination="out.parquet",
        options={"note": "postgresql://bi:secret@db/crm"},
        now=kwargs.pop("now", NOW),  # type: ignore[arg-type]
        **kwargs,  # type: ignore[arg-type]
    )


def test_runs_are_recorded_redacted_and_listed_newest_first(store: RunStore) -> None:
    _run(store, "a" * 32, schedule="daily")
    _run(store, "b" * 32, now=NOW + timedelta(minutes=5))
    with pytest.raises(Conflict, match="exists already"):
        _run(store, "a" * 32)
    run = store.get_run("a" * 32)
    assert run.source == "postgresql://bi:***@db/crm table leads"
    assert run.options == {"note": "postgresql://bi:***@db/crm"}
    assert [r.run_id for r in store.list_runs()] == ["b" * 32, "a" * 32]
    assert [r.run_id for r in store.list_runs(schedule="daily")] == ["a" * 32]
    assert store.list_runs(status="completed") == []
    data = run.to_dict()
    assert data["status"] == "running"
    assert data["started_at"] == NOW.isoformat()
    with pytest.raises(NotFound, match="jobs list"):
        store.get_run("c" * 32)


def test_checkpoints_are_mirrored_once_and_counted(store: RunStore) -> None:
    _run(store, "a" * 32)
    commits = [ChunkCommit(i, 10, 9, 1, {"rows": (i + 1) * 10}, NOW) for i in range(3)]
    store.record_chunks("a" * 32, commits[:2])
    store.record_chunks("a" * 32, commits)  # the first two are known already
    run = store.get_run("a" * 32)
    assert (run.rows_read, run.rows_written, run.rows_rejected, run.chunks) == (30, 27, 3, 3)
    assert store.chunks("a" * 32)[-1].position == {"rows": 30}


def test_claiming_a_run_respects_the_lease(store: RunStore) -> None:
    _run(store, "a" * 32, owner="host:1:x", lease_until=NOW + timedelta(minutes=10))
    with pytest.raises(Conflict, match="being run by host:1:x"):
        store.claim_run("a" * 32, "host:2:y", now=NOW, lease_until=NOW + timedelta(minutes=10))
    assert store.claim_run("a" * 32, "host:2:y", now=NOW, lease_until=NOW, take_over="host:1:x").owner == "host:2:y"
    assert not store.renew_lease("a" * 32, "host:1:x", now=NOW, lease_until=NOW)
    later = NOW + timedelta(minutes=11)
    claimed = store.claim_run("a" * 32, "host:3:z", now=later, lease_until=later + timedelta(minutes=10))
    assert claimed.attempts == 3
    done = store.finish_run("a" * 32, status="completed", now=later, error="ignored")
    assert done.owner is None
    assert done.ended_at == later
    with pytest.raises(Conflict, match="completed already"):
        store.claim_run("a" * 32, "host:4:w", now=later, lease_until=later)
