"""Cron schedules for batch jobs: fire on time, retry with backoff, coalesce, never overlap.

Schedules live in the registry database (``batch_schedules``) with their next fire time. A
:class:`Scheduler` loop (``modelport scheduler``) calls :meth:`Scheduler.tick`, which runs every
schedule that is due. Its rules:

- **Coalescing.** When a schedule is due, its next fire time becomes the first cron time after
  *now*: fire times missed while no scheduler ran collapse into the one run started now.
- **No overlap.** A schedule runs only under its lease (a compare-and-set on its row), so two
  scheduler processes, or ``run-now`` next to the scheduler, never run one schedule twice at once.
  A long run keeps renewing the lease.
- **Retries.** The run id is recorded as *pending* before the run starts. When the run fails, it is
  retried after ``retry_delay_s * 2^(attempt-1)``, resuming the same run from its last committed
  chunk, up to ``retries`` times; a cron time that passes meanwhile is folded into the retry. A
  scheduler that dies mid-run resumes the pending run when it starts again.
- **Fresh model each run.** The job's model reference is resolved when each new run starts, so
  ``leads@production`` picks up a newly promoted version; retries keep the version they began with.

Time comes from an injectable :class:`~modelport.batch.clock.Clock`, so all of this is tested
without sleeping.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

from modelport.batch.clock import Clock, SystemClock
from modelport.batch.job import JobResult, owner_token
from modelport.batch.progress import ProgressCallback, ProgressEvent
from modelport.batch.runlog import RunLog
from modelport.batch.spec import JobSpec, ModelLoader, run_spec
from modelport.core.errors import Conflict, ModelportError, NotFound, ValidationError
from modelport.core.names import validate_name
from modelport.registry.runs import RunStore, ScheduleRecord

OutcomeStatus = Literal["completed", "failed", "retrying", "skipped"]


@dataclass(frozen=True)
class RunRequest:
    """What the scheduler asks its runner to do.

    Attributes:
        run_id: The run to start (fresh) or to resume.
        resume: Whether to resume ``run_id`` rather than start it.
        attempt: 1 for the first attempt, 2 for the first retry, ...
        progress: Called by the job as it goes (it keeps the schedule's lease alive).
    """

    run_id: str
    resume: bool
    attempt: int
    progress: ProgressCallback


ScheduleRunner = Callable[[ScheduleRecord, RunRequest], JobResult]
"""Runs one scheduled job; :func:`spec_runner` builds the standard one."""


@dataclass(frozen=True)
class ScheduleOutcome:
    """What one scheduler step did with one schedule."""

    schedule: str
    status: OutcomeStatus
    run_id: str | None = None
    attempt: int = 0
    error: str | None = None
    next_run_at: datetime | None = None


def check_schedule(cron: str, timezone: str) -> None:
    """Raise :class:`ValidationError` for a bad cron expression or time zone."""
    if not croniter.is_valid(cron):
        raise ValidationError(
            f"Invalid cron expression {cron!r}.",
            hint="Use five fields: minute hour day-of-month month day-of-week, e.g. '0 6 * * *' (06:00 daily).",
        )
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValidationError(
            f"Unknown time zone {timezone!r}.", hint="Use an IANA name such as 'UTC' or 'Europe/Paris'."
        ) from None


def next_fire(cron: str, timezone: str, after: datetime) -> datetime:
    """The first time strictly after ``after`` that ``cron`` fires, read in ``timezone``, as UTC."""
    zone = ZoneInfo(timezone)
    fire: datetime = croniter(cron, after.astimezone(zone)).get_next(datetime)
    return fire.astimezone(ZoneInfo("UTC"))


def spec_runner(
    store: RunStore,
    load_model: ModelLoader,
    *,
    progress: ProgressCallback | None = None,
    runlog: RunLog | None = None,
    clock: Clock | None = None,
) -> ScheduleRunner:
    """The standard runner: run the schedule's stored :class:`JobSpec` with ``load_model``."""

    def run(schedule: ScheduleRecord, request: RunRequest) -> JobResult:
        spec = JobSpec.model_validate(dict(schedule.job))

        def both(event: ProgressEvent) -> None:
            request.progress(event)
            if progress is not None:
                progress(event)

        return run_spec(
            spec.resuming(request.run_id) if request.resume else spec,
            load_model=load_model,
            store=store,
            run_id=None if request.resume else request.run_id,
            schedule=schedule.name,
            progress=both,
            runlog=runlog,
            clock=clock,
        )

    return run


class Scheduler:
    """Runs the schedules stored in the registry database.

    Args:
        store: The run store (schedules and runs).
        runner: Runs one job (see :func:`spec_runner`).
        clock: Time source; tests pass a :class:`~modelport.batch.clock.ManualClock`.
        lease_s: How long a schedule's lease lasts without renewal.
        poll_s: Longest sleep between two checks (schedules added meanwhile are seen this fast).
        actor: Who creates schedules, for the record.
    """

    def __init__(
        self,
        store: RunStore,
        runner: ScheduleRunner,
        *,
        clock: Clock | None = None,
        lease_s: float = 600.0,
        poll_s: float = 30.0,
        actor: str = "unknown",
    ) -> None:
        self.store = store
        self.runner = runner
        self.clock = clock if clock is not None else SystemClock()
        self.lease_s = lease_s
        self.poll_s = poll_s
        self.actor = actor
        self.owner = owner_token()

    # --- managing schedules -------------------------------------------------------------------

    def add(
        self,
        name: str,
        cron: str,
        job: JobSpec | Mapping[str, Any],
        *,
        timezone: str = "UTC",
        retries: int = 0,
        retry_delay_s: float = 60.0,
    ) -> ScheduleRecord:
        """Store a new schedule; its first run is the next cron time from now.

        Raises:
            InvalidName: ``name`` is not a valid name.
            ValidationError: Bad cron expression, time zone, retries or job.
            Conflict: The name is taken.
        """
        validate_name(name, what="schedule name")
        check_schedule(cron, timezone)
        if retries < 0 or retry_delay_s < 0:
            raise ValidationError(
                f"retries ({retries}) and retry delay ({retry_delay_s}s) cannot be negative.",
                hint="Use e.g. --retries 3 --retry-delay 60s.",
            )
        spec = job if isinstance(job, JobSpec) else JobSpec.model_validate(dict(job))
        now = self.clock.now()
        record = ScheduleRecord(
            name=name,
            cron=cron,
            timezone=timezone,
            retries=retries,
            retry_delay_s=retry_delay_s,
            job=spec.model_dump(mode="json"),
            enabled=True,
            created_at=now,
            created_by=self.actor,
            next_run_at=next_fire(cron, timezone, now),
        )
        return self.store.add_schedule(record)

    def remove(self, name: str) -> None:
        """Delete a schedule (NotFound when there is none)."""
        self.store.remove_schedule(name)

    def schedules(self) -> list[ScheduleRecord]:
        """Every schedule."""
        return self.store.list_schedules()

    # --- running ------------------------------------------------------------------------------

    def tick(self) -> list[ScheduleOutcome]:
        """Run every schedule that is due now (a cron time passed, or a retry is due)."""
        now = self.clock.now()
        outcomes = []
        for schedule in self.store.list_schedules():
            outcome = self._fire(schedule.name, force=False) if schedule.enabled and _is_due(schedule, now) else None
            if outcome is not None:
                outcomes.append(outcome)
        return outcomes

    def run_now(self, name: str) -> ScheduleOutcome:
        """Run schedule ``name`` at once (a pending retry is resumed rather than a new run started).

        Raises:
            NotFound: No such schedule.
            Conflict: It is running elsewhere right now.
        """
        self.store.get_schedule(name)
        outcome = self._fire(name, force=True)
        if outcome is None or outcome.status == "skipped":
            raise Conflict(f"Schedule {name!r} is running already.", hint="Wait for that run to finish.")
        return outcome

    def seconds_until_next(self) -> float:
        """How long the loop may sleep: until the next fire or retry, at most ``poll_s``, at least 1 s."""
        now = self.clock.now()
        times = [_due_at(s) for s in self.store.list_schedules() if s.enabled]
        if not times:
            return self.poll_s
        wait = (min(times) - now).total_seconds()
        return min(self.poll_s, max(1.0, wait))

    def run_forever(
        self,
        *,
        stop: Callable[[], bool] = lambda: False,
        on_outcome: Callable[[ScheduleOutcome], None] | None = None,
    ) -> None:
        """Tick, sleep until the next due time, repeat, until ``stop()`` is true."""
        while not stop():
            for outcome in self.tick():
                if on_outcome is not None:
                    on_outcome(outcome)
            if stop():
                return
            self.clock.sleep(self.seconds_until_next())

    def _fire(self, name: str, *, force: bool) -> ScheduleOutcome | None:
        now = self.clock.now()
        if not self.store.acquire_schedule_lease(name, self.owner, now=now, until=self._lease_end()):
            return ScheduleOutcome(name, "skipped", error="running in another scheduler")
        try:
            schedule = self.store.get_schedule(name)
            updates: dict[str, Any] = {}
            if schedule.next_run_at <= now or force:
                updates["next_run_at"] = next_fire(schedule.cron, schedule.timezone, now)
            request = self._request(schedule, now, force=force, cron_due="next_run_at" in updates)
            if request is None:
                schedule = self.store.update_schedule(name, **updates)
                if schedule.pending_run_id is None:
                    return None  # the pending run had completed; nothing else is due
                return ScheduleOutcome(name, "skipped", schedule.pending_run_id, schedule.attempt, "waiting to retry")
            schedule = self.store.update_schedule(
                name, pending_run_id=request.run_id, attempt=request.attempt, retry_at=None, last_run_at=now, **updates
            )
            return self._run(schedule, request)
        finally:
            self.store.release_schedule_lease(name, self.owner)

    def _request(self, schedule: ScheduleRecord, now: datetime, *, force: bool, cron_due: bool) -> RunRequest | None:
        """The run to start: the pending one (a retry, or one cut short), else a new one when due."""
        keep_alive = self._keep_alive(schedule.name)
        pending = schedule.pending_run_id
        if pending is not None:
            try:
                status = self.store.get_run(pending).status
            except NotFound:  # the attempt failed before its run was recorded
                status = None
            if status == "completed":  # it finished, but its scheduler stopped before noting it
                self.store.update_schedule(
                    schedule.name, pending_run_id=None, attempt=0, retry_at=None, last_status="completed"
                )
            elif not force and schedule.retry_at is not None and schedule.retry_at > now:
                return None
            else:
                return RunRequest(pending, status is not None, schedule.attempt + 1, keep_alive)
        if force or cron_due:
            return RunRequest(uuid.uuid4().hex, resume=False, attempt=1, progress=keep_alive)
        return None

    def _run(self, schedule: ScheduleRecord, request: RunRequest) -> ScheduleOutcome:
        name = schedule.name
        try:
            result = self.runner(schedule, request)
        except Exception as exc:  # any failure of the job is recorded, and retried if allowed
            return self._after_failure(schedule, request, exc)
        record = self.store.update_schedule(
            name, pending_run_id=None, attempt=0, retry_at=None, last_run_id=result.run_id, last_status="completed"
        )
        return ScheduleOutcome(name, "completed", result.run_id, request.attempt, None, record.next_run_at)

    def _after_failure(self, schedule: ScheduleRecord, request: RunRequest, exc: Exception) -> ScheduleOutcome:
        error = exc.message if isinstance(exc, ModelportError) else f"{type(exc).__name__}: {exc}"
        if request.attempt <= schedule.retries:
            delay = schedule.retry_delay_s * 2 ** (request.attempt - 1)
            record = self.store.update_schedule(
                schedule.name,
                retry_at=self.clock.now() + timedelta(seconds=delay),
                last_run_id=request.run_id,
                last_status="failed",
            )
            return ScheduleOutcome(schedule.name, "retrying", request.run_id, request.attempt, error, record.retry_at)
        record = self.store.update_schedule(
            schedule.name,
            pending_run_id=None,
            attempt=0,
            retry_at=None,
            last_run_id=request.run_id,
            last_status="failed",
        )
        return ScheduleOutcome(schedule.name, "failed", request.run_id, request.attempt, error, record.next_run_at)

    def _lease_end(self) -> datetime:
        return self.clock.now() + timedelta(seconds=self.lease_s)

    def _keep_alive(self, name: str) -> ProgressCallback:
        last = [self.clock.monotonic()]

        def renew(_event: ProgressEvent) -> None:
            if self.clock.monotonic() - last[0] >= self.lease_s / 3:
                self.store.acquire_schedule_lease(name, self.owner, now=self.clock.now(), until=self._lease_end())
                last[0] = self.clock.monotonic()

        return renew


def _due_at(schedule: ScheduleRecord) -> datetime:
    if schedule.pending_run_id is not None and schedule.retry_at is not None:
        return min(schedule.retry_at, schedule.next_run_at)
    if schedule.pending_run_id is not None:
        return schedule.last_run_at or schedule.next_run_at
    return schedule.next_run_at


def _is_due(schedule: ScheduleRecord, now: datetime) -> bool:
    if schedule.pending_run_id is not None and schedule.retry_at is None:
        return True  # a run was under way when its scheduler stopped: resume it
    return _due_at(schedule) <= now
