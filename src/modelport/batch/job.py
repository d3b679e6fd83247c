"""Run one batch job: record it, score the source chunk by chunk into the sink, resume it after a stop.

:func:`run_job` is the whole life of a run. A fresh run is recorded in the run store (status
``running``, with a lease held by this process); a resumed run (``options.resume``) must name the
same source and destination, takes the lease over (at once when the previous owner was a process
on this host that is gone, else when its lease expired), reuses the stored options so chunk
boundaries are identical, and is scored by exactly the model version the first attempt used. The
sink reports which chunks of the run it committed; the run continues from the position after the
last of them, so every input row is written exactly once (see :mod:`.sql_sink` and
:mod:`.file_sink` for how each sink commits a chunk with its checkpoint). Rows the model cannot
take go to the rejects destination; once more than ``max_errors`` are rejected the run stops and
fails, saying how many and where. Any failure is recorded on the run with its message (passwords
hidden) and re-raised with a hint naming the run id to resume.
"""

from __future__ import annotations

import contextlib
import os
import socket
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from modelport.batch.clock import Clock, SystemClock
from modelport.batch.engine import Engine, LocalEngine
from modelport.batch.options import JobOptions
from modelport.batch.progress import ProgressCallback, ProgressEvent
from modelport.batch.runlog import RunLog
from modelport.batch.scoring import ChunkScorer, ScoredChunk
from modelport.batch.sinks import Sink, SinkContext, resolve_mode
from modelport.batch.sources import START, Source, SourceChunk
from modelport.core.errors import Conflict, ModelportError, ValidationError
from modelport.core.redact import redact_url
from modelport.core.refs import ModelRef
from modelport.registry.runs import FINAL_CHUNK, ChunkCommit, RunRecord, RunStore
from modelport.runtime.predictor import Predictor

PredictorFactory = Callable[[ModelRef | None], Predictor]
"""Loads the model: called with ``None`` for a fresh run (resolve the job's own reference now, so
``name@production`` picks up the current version), or with the exact reference a resumed run
recorded (``name:version``, or the bundle path)."""


@dataclass(frozen=True)
class JobResult:
    """The outcome of a completed run (a failed run raises instead).

    Attributes:
        run_id: The run id (``modelport jobs show RUN_ID``).
        status: ``completed``.
        model: Model name.
        version: Model version (``None`` for an unregistered bundle).
        source: What was read (passwords hidden).
        destination: Where predictions went (passwords hidden).
        rejects: Where rejected rows went, when there were any.
        rows_read: Input rows, over all attempts.
        rows_written: Output rows, over all attempts.
        rows_rejected: Rejected rows, over all attempts.
        chunks: Committed chunks.
        started_at: When the run was first started.
        ended_at: When it completed.
        resumed_from_chunk: The chunk this attempt started at (0 for a fresh run).
        elapsed_s: Wall time of this attempt.
        attempt_rows: Input rows read by this attempt.
    """

    run_id: str
    status: str
    model: str
    version: int | None
    source: str
    destination: str
    rejects: str | None
    rows_read: int
    rows_written: int
    rows_rejected: int
    chunks: int
    started_at: datetime
    ended_at: datetime
    resumed_from_chunk: int
    elapsed_s: float
    attempt_rows: int

    @property
    def rows_per_s(self) -> float:
        """Input rows per second in this attempt."""
        return self.attempt_rows / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able view (``--json``)."""
        data = {name: getattr(self, name) for name in self.__dataclass_fields__}
        data["started_at"] = self.started_at.isoformat()
        data["ended_at"] = self.ended_at.isoformat()
        data["rows_per_s"] = round(self.rows_per_s, 1)
        return data


def owner_token() -> str:
    """``host:pid:random``: who holds a run's lease."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def owner_is_gone(owner: str | None) -> bool:
    """Whether ``owner`` was a process on this host that no longer exists."""
    if not owner:
        return False
    host, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


@dataclass
class _Totals:
    rows_read: int = 0
    rows_written: int = 0
    rows_rejected: int = 0
    chunks: int = 0
    commits: list[ChunkCommit] = field(default_factory=list)

    def add(self, commit: ChunkCommit) -> None:
        self.rows_read += commit.rows_read
        self.rows_written += commit.rows_written
        self.rows_rejected += commit.rows_rejected
        self.chunks += 1


class _Job:
    """The state of one attempt of one run (see :func:`run_job`)."""

    def __init__(
        self,
        predictor_factory: PredictorFactory,
        source: Source,
        sink: Sink,
        options: JobOptions,
        store: RunStore,
        *,
        model_ref: str | None,
        run_id: str | None,
        schedule: str | None,
        progress: ProgressCallback | None,
        runlog: RunLog | None,
        clock: Clock,
        engine: Engine | None,
    ) -> None:
        self.factory = predictor_factory
        self.source = source
        self.sink = sink
        self.options = options
        self.store = store
        self.model_ref = model_ref
        self.run_id = run_id or uuid.uuid4().hex
        self.schedule = schedule
        self.progress = progress
        self.runlog = runlog
        self.clock = clock
        self.engine = engine
        self.owner = owner_token()
        self.totals = _Totals()
        self.resumed_rows = 0
        self.first_chunk = 0
        self.started = clock.monotonic()
        self.lease_renewed = self.started
        self.total_rows: int | None = None
        self.predictor: Predictor | None = None

    # --- start --------------------------------------------------------------------------------

    def _lease_until(self) -> datetime:
        return self.clock.now() + timedelta(seconds=self.options.lease_s)

    def start(self) -> tuple[RunRecord, ModelRef | None]:
        """Record a fresh run, or claim a stopped one; return it and the model reference to pin."""
        if self.options.resume is None:
            ref = self.model_ref or "(in-memory model)"
            run = self.store.create_run(
                self.run_id,
                model_ref=ref,
                source=self.source.description,
                destination=self.sink.description,
                options=self.options.stored(),
                now=self.clock.now(),
                schedule=self.schedule,
                owner=self.owner,
                lease_until=self._lease_until(),
            )
            return run, None
        self.run_id = self.options.resume
        run = self.store.get_run(self.run_id)
        wanted = (redact_url(self.source.description), redact_url(self.sink.description))
        if (run.source, run.destination) != wanted:
            raise Conflict(
                f"Run {self.run_id} read {run.source} and wrote {run.destination}; this call reads {wanted[0]} "
                f"and writes {wanted[1]}.",
                hint="Resume a run with the same input and output it started with.",
            )
        take_over = run.owner if owner_is_gone(run.owner) else None
        run = self.store.claim_run(
            self.run_id, self.owner, now=self.clock.now(), lease_until=self._lease_until(), take_over=take_over
        )
        self.options = self.options.for_resume(dict(run.options))
        if run.model_version is not None and run.model_name is not None:
            return run, ModelRef(name=run.model_name, version=run.model_version)
        return run, None  # an unregistered bundle: the job's own reference (a path) names it

    def load(self, pinned: ModelRef | None, run: RunRecord) -> Predictor:
        """Load the model and record (or check) its version."""
        predictor = self.factory(pinned)
        if run.model_name is None:
            self.store.set_model(self.run_id, name=predictor.name, version=predictor.version)
        elif (predictor.name, predictor.version) != (run.model_name, run.model_version):
            raise Conflict(
                f"Run {self.run_id} scored with {run.model_name}:{run.model_version}, but the model loaded for "
                f"the resume is {predictor.name}:{predictor.version}.",
                hint="A resumed run must use the model version it started with.",
            )
        self.predictor = predictor
        return predictor

    def reconcile(self, commits: list[ChunkCommit]) -> tuple[bool, dict[str, Any]]:
        """Bring the store in line with the sink's committed chunks; return (finalised, start position)."""
        finalized = any(c.index == FINAL_CHUNK for c in commits)
        chunks = [c for c in commits if c.index != FINAL_CHUNK]
        self.store.record_chunks(self.run_id, chunks)
        for commit in chunks:
            self.totals.add(commit)
        self.resumed_rows = self.totals.rows_read
        self.first_chunk = len(chunks)
        position = dict(chunks[-1].position) if chunks else dict(START)
        return finalized, position

    # --- the chunk loop -----------------------------------------------------------------------

    def numbered(self, chunks: Iterator[SourceChunk]) -> Iterator[tuple[int, SourceChunk]]:
        """Number the chunks from the first one this attempt writes."""
        try:
            for offset, chunk in enumerate(chunks):
                yield self.first_chunk + offset, chunk
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                close()

    def commit(self, scored: ScoredChunk) -> None:
        """Commit one chunk through the sink, mirror its checkpoint, report, and check the error budget."""
        commit = ChunkCommit(
            index=scored.index,
            rows_read=scored.rows_read,
            rows_written=scored.output.num_rows,
            rows_rejected=scored.rejects.num_rows,
            position=scored.position,
            committed_at=self.clock.now(),
        )
        if not self.sink.write(scored, commit):
            self.store.record_chunks(self.run_id, [commit])
        self.totals.add(commit)
        self._renew_lease()
        self._report("chunk")
        if self.runlog is not None and self.predictor is not None:
            self.runlog.chunk(self.run_id, self.predictor, scored)
        self.check_error_budget()

    def _renew_lease(self) -> None:
        now = self.clock.monotonic()
        if now - self.lease_renewed < self.options.lease_s / 3:
            return
        if not self.store.renew_lease(self.run_id, self.owner, now=self.clock.now(), lease_until=self._lease_until()):
            raise Conflict(
                f"Run {self.run_id} was taken over by another process.",
                hint="Only one process may run a batch run at a time; check `modelport jobs show`.",
            )
        self.lease_renewed = now

    def check_error_budget(self) -> None:
        """Fail once more rows were rejected than ``max_errors`` allows."""
        rejected = self.totals.rows_rejected
        if rejected > self.options.max_errors:
            raise ValidationError(
                f"{rejected} row(s) were rejected, more than --max-errors {self.options.max_errors} allows; "
                f"they are in {self.sink.rejects_location}, each with its reason and original values.",
                hint=f"Fix the input and start a new run, or accept them with --resume {self.run_id} "
                f"--max-errors {rejected}.",
            )

    def _report(self, kind: str, status: str | None = None) -> None:
        if self.progress is None:
            return
        self.progress(
            ProgressEvent(
                kind=kind,  # type: ignore[arg-type]
                run_id=self.run_id,
                rows_read=self.totals.rows_read,
                rows_written=self.totals.rows_written,
                rows_rejected=self.totals.rows_rejected,
                chunks=self.totals.chunks,
                total_rows=self.total_rows,
                resumed_rows=self.resumed_rows,
                elapsed_s=self.clock.monotonic() - self.started,
                status=status,
            )
        )

    # --- the run ------------------------------------------------------------------------------

    def execute(self) -> JobResult:
        """Run (or resume) the job to completion; record and re-raise any failure."""
        run, pinned = self.start()
        try:
            predictor = self.load(pinned, run)
            scorer = ChunkScorer(
                predictor,
                self.options,
                run_id=self.run_id,
                clock=self.clock.now,
                timer=self.clock.monotonic,
                sample_per_chunk=max(1, self.options.sample_rows // 10) if self.runlog is not None else 0,
                parallel_chunks=self.engine is None and self.options.scoring_threads > 1,
            )
            mode = resolve_mode(self.sink, self.options.mode, self.options.key)
            commits = self.sink.open(SinkContext(self.run_id, mode, self.options.key, self.store))
            finalized, position = self.reconcile(commits)
            self.check_error_budget()
            if not finalized:
                self._score_all(scorer, position)
                self.sink.finish()
            record = self.store.finish_run(self.run_id, status="completed", now=self.clock.now())
        except BaseException as exc:
            self._fail(exc)
            raise
        finally:
            self.source.close()
            self.sink.close()
        result = self._result(record)
        self._report("end", "completed")
        self._log_run(None)
        return result

    def _log_run(self, error: BaseException | None) -> None:
        if self.runlog is None or self.predictor is None:
            return
        self.runlog.run(
            self.run_id,
            model=self.predictor.name,
            version=self.predictor.version,
            counts={
                "rows_read": self.totals.rows_read,
                "rows_written": self.totals.rows_written,
                "rows_rejected": self.totals.rows_rejected,
                "chunks": self.totals.chunks,
            },
            elapsed_s=self.clock.monotonic() - self.started,
            ended_at=self.clock.now(),
            error=error,
        )

    def _score_all(self, scorer: ChunkScorer, position: dict[str, Any]) -> None:
        self.source.open()
        self.total_rows = self.source.count_rows()
        if self.totals.rows_rejected:
            self.store.set_rejects(self.run_id, self.sink.rejects_location)
        self._report("start")
        chunks = self.source.read(
            self.options.chunk_size,
            start=position,
            columns=scorer.columns,
            as_text=scorer.text_columns,
            order_by=self.options.key,
        )
        engine = self.engine
        if engine is None:
            engine = LocalEngine(prefetch=self.options.prefetch, workers=self.options.scoring_threads)
        try:
            engine.run(self.numbered(chunks), scorer.score, self.commit)
        finally:
            if self.totals.rows_rejected:
                self.store.set_rejects(self.run_id, self.sink.rejects_location)

    def _fail(self, exc: BaseException) -> None:
        if isinstance(exc, ModelportError):
            message, kind = str(exc.message), exc.type
            if self.totals.chunks or self.first_chunk:
                resume = f"Run {self.run_id} keeps what it committed; resume it with --resume {self.run_id}."
            else:
                resume = f"Nothing was committed (run {self.run_id} is recorded as failed); fix it and run again."
            exc.hint = f"{exc.hint} {resume}" if exc.hint else resume
        else:
            message, kind = f"{type(exc).__name__}: {exc}", type(exc).__name__
        # When the registry itself is unreachable the run stays 'running' until its lease expires.
        with contextlib.suppress(ModelportError):
            self.store.finish_run(self.run_id, status="failed", now=self.clock.now(), error=message, error_type=kind)
        self._report("end", "failed")
        self._log_run(exc)

    def _result(self, record: RunRecord) -> JobResult:
        predictor = self.predictor
        assert predictor is not None
        return JobResult(
            run_id=self.run_id,
            status=record.status,
            model=predictor.name,
            version=predictor.version,
            source=record.source,
            destination=record.destination,
            rejects=self.sink.rejects_location if self.totals.rows_rejected else None,
            rows_read=self.totals.rows_read,
            rows_written=self.totals.rows_written,
            rows_rejected=self.totals.rows_rejected,
            chunks=self.totals.chunks,
            started_at=record.started_at,
            ended_at=record.ended_at or self.clock.now(),
            resumed_from_chunk=self.first_chunk,
            elapsed_s=self.clock.monotonic() - self.started,
            attempt_rows=self.totals.rows_read - self.resumed_rows,
        )


def run_job(
    predictor_factory: PredictorFactory,
    source: Source,
    sink: Sink,
    options: JobOptions,
    store: RunStore,
    *,
    model_ref: str | None = None,
    run_id: str | None = None,
    schedule: str | None = None,
    progress: ProgressCallback | None = None,
    runlog: RunLog | None = None,
    clock: Clock | None = None,
    engine: Engine | None = None,
) -> JobResult:
    """Score ``source`` into ``sink`` with the model from ``predictor_factory``, exactly once per row.

    Args:
        predictor_factory: Loads the model (see :data:`PredictorFactory`).
        source: What to read.
        sink: Where to write.
        options: Job options; ``options.resume`` continues a stopped run.
        store: Run records and checkpoints (the registry database).
        model_ref: The model reference as the user gave it, for the run record.
        run_id: Id for a fresh run (32 hex characters); generated when omitted.
        schedule: Name of the schedule that started the run, if any.
        progress: Called on start, after each committed chunk, and at the end.
        runlog: Writes run-level records and a sample of rows to the prediction log.
        clock: Time source (tests pass a manual one).
        engine: How chunks are moved (default :class:`LocalEngine`).

    Returns:
        The completed run's :class:`JobResult`.

    Raises:
        ModelportError: The run failed; it is recorded as failed, committed chunks are kept, and the
            hint names the run id to resume (``ServiceUnavailable`` for an unreachable database,
            ``ValidationError`` when rejects exceed ``max_errors``, ``Conflict`` for a mismatched
            resume, ...).
    """
    job = _Job(
        predictor_factory,
        source,
        sink,
        options,
        store,
        model_ref=model_ref,
        run_id=run_id,
        schedule=schedule,
        progress=progress,
        runlog=runlog,
        clock=clock if clock is not None else SystemClock(),
        engine=engine,
    )
    return job.execute()
