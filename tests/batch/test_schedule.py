from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from modelport.batch.clock import ManualClock
from modelport.batch.job import JobResult
from modelport.batch.schedule import RunRequest, Scheduler, next_fire, spec_runner
from modelport.batch.spec import JobSpec
from modelport.core.errors import Conflict, InvalidName, ServiceUnavailable, ValidationError
from modelport.core.refs import ModelRef
from modelport.registry.runs import RunStore, ScheduleRecord
from modelport.runtime.predictor import Predictor

from .conftest import frame

START = datetime(2025, 1, 6, 4, 0, tzinfo=UTC)  # a Monday, 05:00 in Paris
SPEC = JobSpec.build("leads@production", "leads.parquet", "postgresql://bi:pa55word@db/crm", table="lead_scores")


class FakeRunner:
    """Records each request; fails while ``failures`` lists errors to raise."""

    def __init__(self, clock: ManualClock, failures: list[Exception] | None = None, *, takes_s: float = 0.0) -> None:
        self.clock = clock
        self.failures = list(failures or [])
        self.takes_s = takes_s
        self.requests: list[RunRequest] = []

    def __call__(self, schedule: ScheduleRecord, request: RunRequest) -> JobResult:
        self.requests.append(request)
        self.clock.advance(self.takes_s)
        if self.failures:
            raise self.failures.pop(0)
        now = self.clock.now()
        return JobResult(request.run_id, "completed", "leads", 1, "in", "out", None, 1, 1, 0, 1, now, now, 0, 0.0, 1)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


def _scheduler(store: RunStore, runner: Callable[..., JobResult], clock: ManualClock) -> Scheduler:
    return Scheduler(store, runner, clock=clock, actor="ops")


def test_a_schedule_fires_at_its_cron_time_in_its_time_zone(store: RunStore, clock: ManualClock) -> None:
    runner = FakeRunner(clock)
    scheduler = _scheduler(store, runner, clock)
    record = scheduler.add("daily-leads", "0 6 * * *", SPEC, timezone="Europe/Paris", retries=2)
    assert record.next_run_at == datetime(2025, 1, 6, 5, 0, tzinfo=UTC)
    assert scheduler.tick() == []
    assert scheduler.seconds_until_next() == 30.0  # capped by poll_s
    clock.set(datetime(2025, 1, 6, 5, 0, tzinfo=UTC))
    [outcome] = scheduler.tick()
    assert (outcome.status, outcome.attempt, outcome.next_run_at) == (
        "completed",
        1,
        datetime(2025, 1, 7, 5, tzinfo=UTC),
    )
    assert runner.requests[0].resume is False
    assert scheduler.tick() == []
    stored = store.get_schedule("daily-leads")
    assert (stored.last_status, stored.last_run_id, stored.pending_run_id) == ("completed", outcome.run_id, None)
    shown = stored.to_dict()
    assert "pa55word" not in str(shown)
    assert "bi:***@db" in str(shown)


def test_runs_missed_while_no_scheduler_ran_are_coalesced_into_one(store: RunStore, clock: ManualClock) -> None:
    runner = FakeRunner(clock)
    scheduler = _scheduler(store, runner, clock)
    scheduler.add("hourly", "0 * * * *", SPEC)
    clock.advance(3 * 24 * 3600 + 1800)  # down for three days: 72 fire times missed
    restarted = _scheduler(store, runner, clock)
    assert [o.status for o in restarted.tick()] == ["completed"]
    assert restarted.tick() == []
    assert store.get_schedule("hourly").next_run_at == next_fire("0 * * * *", "UTC", clock.now())
    assert len(runner.requests) == 1


def test_failures_retry_with_backoff_resuming_the_same_run(store: RunStore, clock: ManualClock) -> None:
    failures: list[Exception] = [ServiceUnavailable("db down"), ServiceUnavailable("db still down")]
    runner = FakeRunner(clock, failures)
    scheduler = _scheduler(store, runner, clock)
    scheduler.add("leads", "0 5 * * *", SPEC, retries=3, retry_delay_s=60)
    clock.set(datetime(2025, 1, 6, 5, 0, tzinfo=UTC))
    [first] = scheduler.tick()
    assert (first.status, first.attempt, first.error) == ("retrying", 1, "db down")
    assert first.next_run_at == clock.now() + timedelta(seconds=60)
    clock.advance(59)
    assert scheduler.tick() == []
    assert scheduler.seconds_until_next() == pytest.approx(1.0)
    clock.advance(1)
    [second] = scheduler.tick()
    assert (second.status, second.attempt) == ("retrying", 2)
    assert second.next_run_at == clock.now() + timedelta(seconds=120)  # backoff doubles
    clock.advance(120)
    [third] = scheduler.tick()
    assert (third.status, third.attempt) == ("completed", 3)
    run_ids = {r.run_id for r in runner.requests}
    assert len(run_ids) == 1
    assert [r.resume for r in runner.requests] == [False, False, False]
    assert store.get_schedule("leads").pending_run_id is None


def test_retries_resume_a_recorded_run_and_give_up_after_the_last_one(store: RunStore, clock: ManualClock) -> None:
    runner = FakeRunner(clock, [ServiceUnavailable("down")] * 3)
    scheduler = _scheduler(store, runner, clock)
    scheduler.add("leads", "0 5 * * *", SPEC, retries=1, retry_delay_s=10)
    clock.set(datetime(2025, 1, 6, 5, 0, tzinfo=UTC))
    [first] = scheduler.tick()
    store.create_run(first.run_id or "", model_ref="x", source="s", destination="d", options={}, now=clock.now())
    store.finish_run(first.run_id or "", status="failed", now=clock.now())
    clock.advance(10)
    [second] = scheduler.tick()
    assert (second.status, second.attempt) == ("failed", 2)
    assert runner.requests[1].resume is True
    assert runner.requests[1].run_id == first.run_id
    assert store.get_schedule("leads").pending_run_id is None
    clock.set(datetime(2025, 1, 7, 5, 0, tzinfo=UTC))
    [third] = scheduler.tick()
    assert third.run_id != first.run_id
    assert runner.requests[2].resume is False


def test_a_cron_time_during_a_pending_retry_does_not_start_a_second_run(store: RunStore, clock: ManualClock) -> None:
    runner = FakeRunner(clock, [ServiceUnavailable("down")])
    scheduler = _scheduler(store, runner, clock)
    scheduler.add("often", "*/5 * * * *", SPEC, retries=2, retry_delay_s=600)
    clock.advance(3600)
    assert [o.status for o in scheduler.tick()] == ["retrying"]
    clock.advance(300)
    assert [o.status for o in scheduler.tick()] == ["skipped"]
    clock.advance(300)
    assert [o.status for o in scheduler.tick()] == ["completed"]
    assert len({r.run_id for r in runner.requests}) == 1


def test_one_schedule_never_runs_twice_at_once(store: RunStore, clock: ManualClock) -> None:
    runner = FakeRunner(clock)
    first = _scheduler(store, runner, clock)
    second = _scheduler(store, runner, clock)
    first.add("leads", "0 5 * * *", SPEC)
    clock.set(datetime(2025, 1, 6, 5, 0, tzinfo=UTC))
    assert store.acquire_schedule_lease("leads", first.owner, now=clock.now(), until=clock.now() + timedelta(hours=1))
    assert [o.status for o in second.tick()] == ["skipped"]
    with pytest.raises(Conflict, match="running already"):
        second.run_now("leads")
    assert runner.requests == []
    clock.advance(2 * 3600)  # the holder died; its lease expired
    assert [o.status for o in second.tick()] == ["completed"]


def test_a_run_cut_short_by_a_dead_scheduler_is_resumed_on_restart(store: RunStore, clock: ManualClock) -> None:
    runner = FakeRunner(clock)
    scheduler = _scheduler(store, runner, clock)
    scheduler.add("leads", "0 5 * * *", SPEC)
    run_id = "c" * 32
    store.create_run(run_id, model_ref="x", source="s", destination="d", options={}, now=clock.now())
    store.update_schedule("leads", pending_run_id=run_id, attempt=1)
    [outcome] = _scheduler(store, runner, clock).tick()
    assert outcome.status == "completed"
    assert runner.requests[0] == RunRequest(run_id, True, 2, runner.requests[0].progress)
    store.update_schedule("leads", pending_run_id=run_id, attempt=1)
    store.finish_run(run_id, status="completed", now=clock.now())
    assert _scheduler(store, runner, clock).tick() == []  # it had finished: nothing to redo
    assert store.get_schedule("leads").pending_run_id is None


def test_run_forever_sleeps_on_the_clock_until_stopped(store: RunStore, clock: ManualClock) -> None:
    runner = FakeRunner(clock)
    scheduler = _scheduler(store, runner, clock)
    scheduler.add("quarter", "*/15 * * * *", SPEC)
    outcomes: list[str] = []
    scheduler.run_forever(
        stop=lambda: clock.now() > START + timedelta(hours=1), on_outcome=lambda o: outcomes.append(o.status)
    )
    assert outcomes == ["completed"] * 4
    assert max(clock.sleeps) <= 30.0


def test_bad_schedules_are_refused_with_a_hint(store: RunStore, clock: ManualClock) -> None:
    scheduler = _scheduler(store, FakeRunner(clock), clock)
    with pytest.raises(ValidationError, match="cron") as info:
        scheduler.add("x", "every day", SPEC)
    assert "0 6 * * *" in (info.value.hint or "")
    with pytest.raises(ValidationError, match="time zone"):
        scheduler.add("x", "0 6 * * *", SPEC, timezone="Mars/Olympus")
    with pytest.raises(ValidationError, match="negative"):
        scheduler.add("x", "0 6 * * *", SPEC, retries=-1)
    with pytest.raises(InvalidName):
        scheduler.add("../x", "0 6 * * *", SPEC)
    scheduler.add("x", "0 6 * * *", SPEC.model_dump(mode="json"))
    with pytest.raises(Conflict, match="exists already"):
        scheduler.add("x", "0 6 * * *", SPEC)
    assert [s.name for s in scheduler.schedules()] == ["x"]
    scheduler.remove("x")
    assert scheduler.schedules() == []


def test_the_model_reference_is_resolved_at_each_run(
    tmp_path: Path, store: RunStore, clock: ManualClock, versioned: Callable[[int], Predictor]
) -> None:
    frame(50).to_parquet(tmp_path / "leads.parquet")
    production = {"version": 1}
    loaded: list[ModelRef] = []

    def load_model(ref: ModelRef) -> Predictor:
        loaded.append(ref)
        return versioned(production["version"])

    spec = JobSpec.build("lr@production", str(tmp_path / "leads.parquet"), str(tmp_path / "scores.csv"))
    scheduler = Scheduler(store, spec_runner(store, load_model, clock=clock), clock=clock)
    scheduler.add("daily", "0 5 * * *", spec)
    clock.set(datetime(2025, 1, 6, 5, 0, tzinfo=UTC))
    assert [o.status for o in scheduler.tick()] == ["completed"]
    production["version"] = 2  # a newer version is promoted
    clock.set(datetime(2025, 1, 7, 5, 0, tzinfo=UTC))
    assert [o.status for o in scheduler.tick()] == ["completed"]
    assert loaded == [ModelRef(name="lr", alias="production")] * 2
    runs = store.list_runs(schedule="daily")
    assert sorted(r.model_version for r in runs) == [1, 2]
    assert {r.schedule for r in runs} == {"daily"}
