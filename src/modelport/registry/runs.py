"""Batch run records, chunk checkpoints and schedules, kept in the registry database.

``batch_runs`` holds one row per batch run (model and version, redacted source and destination,
options, status, row counters, start/end, error, and the lease of the process running it);
``batch_chunks`` one row per committed chunk (its counters and the source position after it: the
checkpoint a resumed run continues from); ``batch_schedules`` the cron schedules with their
pending retry and the lease that keeps two runs of one schedule from overlapping. The tables live
on the registry's shared :data:`~modelport.registry.tables.metadata` and are created by the
Alembic migration ``0002_batch_runs``. :class:`RunStore` is the small API the batch layer uses;
:func:`chunk_table` builds the same checkpoint table for an output database other than the
registry's, so a chunk and its checkpoint can always be committed in one transaction there.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from modelport.core.errors import Conflict, NotFound
from modelport.core.redact import redact_url
from modelport.registry.store import SqlStore
from modelport.registry.tables import NAME_LENGTH, UTCDateTime, metadata

T = TypeVar("T")

RUN_ID_LENGTH = 32
RUN_STATUSES = ("running", "completed", "failed")
"""What a run can be: still running (or killed while running), done, or stopped by an error."""

FINAL_CHUNK = -1
"""Chunk index of the marker a sink commits when it finalised its output (e.g. swapped a table)."""


def _chunk_columns() -> list[sa.Column[Any]]:
    return [
        sa.Column("run_id", sa.String(RUN_ID_LENGTH), primary_key=True),
        sa.Column("chunk_index", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("rows_read", sa.BigInteger, nullable=False),
        sa.Column("rows_written", sa.BigInteger, nullable=False),
        sa.Column("rows_rejected", sa.BigInteger, nullable=False),
        sa.Column("position", sa.JSON(), nullable=False),
        sa.Column("committed_at", UTCDateTime, nullable=False),
    ]


batch_runs = sa.Table(
    "batch_runs",
    metadata,
    sa.Column("run_id", sa.String(RUN_ID_LENGTH), primary_key=True),
    sa.Column("schedule", sa.String(NAME_LENGTH), nullable=True, index=True),
    sa.Column("model_ref", sa.String(1024), nullable=False),
    sa.Column("model_name", sa.String(NAME_LENGTH), nullable=True),
    sa.Column("model_version", sa.Integer, nullable=True),
    sa.Column("source", sa.Text, nullable=False),
    sa.Column("destination", sa.Text, nullable=False),
    sa.Column("rejects", sa.Text, nullable=True),
    sa.Column("options", sa.JSON(), nullable=False),
    sa.Column("status", sa.String(16), nullable=False, index=True),
    sa.Column("rows_read", sa.BigInteger, nullable=False),
    sa.Column("rows_written", sa.BigInteger, nullable=False),
    sa.Column("rows_rejected", sa.BigInteger, nullable=False),
    sa.Column("chunks", sa.Integer, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("started_at", UTCDateTime, nullable=False, index=True),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Column("ended_at", UTCDateTime, nullable=True),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("error_type", sa.String(64), nullable=True),
    sa.Column("owner", sa.String(255), nullable=True),
    sa.Column("lease_until", UTCDateTime, nullable=True),
)

batch_chunks = sa.Table("batch_chunks", metadata, *_chunk_columns())

batch_schedules = sa.Table(
    "batch_schedules",
    metadata,
    sa.Column("name", sa.String(NAME_LENGTH), primary_key=True),
    sa.Column("cron", sa.String(255), nullable=False),
    sa.Column("timezone", sa.String(64), nullable=False),
    sa.Column("retries", sa.Integer, nullable=False),
    sa.Column("retry_delay_s", sa.Float, nullable=False),
    sa.Column("job", sa.JSON(), nullable=False),
    sa.Column("enabled", sa.Boolean, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("created_by", sa.String(255), nullable=False),
    sa.Column("next_run_at", UTCDateTime, nullable=False),
    sa.Column("last_run_id", sa.String(RUN_ID_LENGTH), nullable=True),
    sa.Column("last_status", sa.String(16), nullable=True),
    sa.Column("last_run_at", UTCDateTime, nullable=True),
    sa.Column("pending_run_id", sa.String(RUN_ID_LENGTH), nullable=True),
    sa.Column("attempt", sa.Integer, nullable=False),
    sa.Column("retry_at", UTCDateTime, nullable=True),
    sa.Column("lease_owner", sa.String(255), nullable=True),
    sa.Column("lease_until", UTCDateTime, nullable=True),
)


def chunk_table(name: str, table_metadata: sa.MetaData | None = None) -> sa.Table:
    """A checkpoint table with the columns of ``batch_chunks``, for another database.

    Args:
        name: Table name (already validated by the caller).
        table_metadata: Metadata to attach it to; a fresh one by default.
    """
    return sa.Table(name, table_metadata if table_metadata is not None else sa.MetaData(), *_chunk_columns())


@dataclass(frozen=True)
class ChunkCommit:
    """One committed chunk: the checkpoint a resumed run continues from.

    Attributes:
        index: 0-based chunk number (or :data:`FINAL_CHUNK` for the sink's finalisation marker).
        rows_read: Input rows in the chunk.
        rows_written: Prediction rows written.
        rows_rejected: Rows sent to the rejects destination.
        position: The source position after this chunk (JSON-able; the source defines it).
        committed_at: When it was committed (UTC).
    """

    index: int
    rows_read: int
    rows_written: int
    rows_rejected: int
    position: Mapping[str, Any] = field(hash=False)
    committed_at: datetime

    def to_row(self, run_id: str) -> dict[str, Any]:
        """The row of a checkpoint table for ``run_id``."""
        return {
            "run_id": run_id,
            "chunk_index": self.index,
            "rows_read": self.rows_read,
            "rows_written": self.rows_written,
            "rows_rejected": self.rows_rejected,
            "position": dict(self.position),
            "committed_at": self.committed_at,
        }

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> ChunkCommit:
        """Build from a checkpoint-table row."""
        return cls(
            index=int(row["chunk_index"]),
            rows_read=int(row["rows_read"]),
            rows_written=int(row["rows_written"]),
            rows_rejected=int(row["rows_rejected"]),
            position=dict(row["position"] or {}),
            committed_at=row["committed_at"],
        )


@dataclass(frozen=True)
class RunRecord:
    """A snapshot of one batch run, as stored. URLs in ``source``/``destination`` are redacted."""

    run_id: str
    schedule: str | None
    model_ref: str
    model_name: str | None
    model_version: int | None
    source: str
    destination: str
    rejects: str | None
    options: Mapping[str, Any] = field(hash=False)
    status: str
    rows_read: int
    rows_written: int
    rows_rejected: int
    chunks: int
    attempts: int
    started_at: datetime
    updated_at: datetime
    ended_at: datetime | None
    error: str | None
    error_type: str | None
    owner: str | None
    lease_until: datetime | None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able view (``jobs show --json``)."""
        data = {name: getattr(self, name) for name in self.__dataclass_fields__}
        data["options"] = dict(self.options)
        for key in ("started_at", "updated_at", "ended_at", "lease_until"):
            value = data[key]
            data[key] = value.isoformat() if value is not None else None
        return data


@dataclass(frozen=True)
class ScheduleRecord:
    """A snapshot of one schedule. ``job`` is the batch job specification (it may hold URLs with
    credentials: show it only through :meth:`redacted_job`)."""

    name: str
    cron: str
    timezone: str
    retries: int
    retry_delay_s: float
    job: Mapping[str, Any] = field(hash=False)
    enabled: bool
    created_at: datetime
    created_by: str
    next_run_at: datetime
    last_run_id: str | None = None
    last_status: str | None = None
    last_run_at: datetime | None = None
    pending_run_id: str | None = None
    attempt: int = 0
    retry_at: datetime | None = None
    lease_owner: str | None = None
    lease_until: datetime | None = None

    def redacted_job(self) -> dict[str, Any]:
        """``job`` with every URL password replaced by ``***``."""
        redacted: dict[str, Any] = _redact_tree(dict(self.job))
        return redacted

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able view with the job redacted (``schedule list --json``)."""
        data = {name: getattr(self, name) for name in self.__dataclass_fields__}
        data["job"] = self.redacted_job()
        for key, value in list(data.items()):
            if isinstance(value, datetime):
                data[key] = value.isoformat()
        return data


def _redact_tree(value: Any) -> Any:
    if isinstance(value, str):
        return redact_url(value)
    if isinstance(value, Mapping):
        return {k: _redact_tree(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redact_tree(v) for v in value]
    return value


def _run_not_found(run_id: str) -> NotFound:
    return NotFound(f"No batch run {run_id!r}.", hint="List runs with: modelport jobs list")


def _schedule_not_found(name: str) -> NotFound:
    return NotFound(f"No schedule {name!r}.", hint="List schedules with: modelport schedule list")


class RunStore(SqlStore):
    """Run records, checkpoints and schedules in the registry database.

    The database must already be at the registry's newest schema (the :class:`Registry` migrates
    it on first use; tests may call :func:`modelport.registry.schema.upgrade`). Every method runs
    its own short transaction, except :meth:`commit_chunk`, which joins the caller's.

    Args:
        engine: Engine of the registry database.
        url: The database URL as configured (only for error messages; its password is hidden).
    """

    @property
    def engine(self) -> Engine:
        """The registry database engine (a sink writing to this same database shares it)."""
        return self._engine

    @property
    def url(self) -> str:
        """The database URL as configured."""
        return self._url

    # --- runs ---------------------------------------------------------------------------------

    def create_run(
        self,
        run_id: str,
        *,
        model_ref: str,
        source: str,
        destination: str,
        options: Mapping[str, Any],
        now: datetime,
        schedule: str | None = None,
        owner: str | None = None,
        lease_until: datetime | None = None,
    ) -> RunRecord:
        """Record a new run with status ``running``.

        Raises:
            Conflict: A run with this id exists already.
        """

        def work(conn: Connection) -> None:
            exists = conn.execute(sa.select(batch_runs.c.run_id).where(batch_runs.c.run_id == run_id)).first()
            if exists is not None:
                raise Conflict(f"Batch run {run_id!r} exists already.", hint="Use a new run id, or resume it.")
            conn.execute(
                batch_runs.insert().values(
                    run_id=run_id,
                    schedule=schedule,
                    model_ref=model_ref,
                    source=redact_url(source),
                    destination=redact_url(destination),
                    options=_redact_tree(dict(options)),
                    status="running",
                    rows_read=0,
                    rows_written=0,
                    rows_rejected=0,
                    chunks=0,
                    attempts=1,
                    started_at=now,
                    updated_at=now,
                    owner=owner,
                    lease_until=lease_until,
                )
            )

        self._tx(work)
        return self.get_run(run_id)

    def get_run(self, run_id: str) -> RunRecord:
        """The run ``run_id``.

        Raises:
            NotFound: There is no such run.
        """
        row = self._tx(
            lambda c: c.execute(sa.select(batch_runs).where(batch_runs.c.run_id == run_id)).mappings().first(),
            write=False,
        )
        if row is None:
            raise _run_not_found(run_id)
        return RunRecord(**dict(row))

    def list_runs(self, *, schedule: str | None = None, status: str | None = None, limit: int = 50) -> list[RunRecord]:
        """The newest runs first, optionally of one schedule or with one status."""
        query = sa.select(batch_runs).order_by(batch_runs.c.started_at.desc(), batch_runs.c.run_id).limit(limit)
        if schedule is not None:
            query = query.where(batch_runs.c.schedule == schedule)
        if status is not None:
            query = query.where(batch_runs.c.status == status)
        rows = self._tx(lambda c: c.execute(query).mappings().all(), write=False)
        return [RunRecord(**dict(r)) for r in rows]

    def claim_run(
        self, run_id: str, owner: str, *, now: datetime, lease_until: datetime, take_over: str | None = None
    ) -> RunRecord:
        """Take the lease of a stopped run to resume it, and mark it ``running`` again.

        The claim succeeds when the run is not running, its lease has expired, or its owner is
        ``take_over`` (a process the caller knows to be dead).

        Raises:
            NotFound: There is no such run.
            Conflict: The run completed, or another live process is running it.
        """
        run = self.get_run(run_id)
        if run.status == "completed":
            raise Conflict(f"Batch run {run_id!r} completed already; there is nothing to resume.")
        free = sa.or_(
            batch_runs.c.status != "running",
            batch_runs.c.owner.is_(None),
            batch_runs.c.lease_until.is_(None),
            batch_runs.c.lease_until < now,
        )
        if take_over is not None:
            free = sa.or_(free, batch_runs.c.owner == take_over)
        stmt = (
            batch_runs.update()
            .where(batch_runs.c.run_id == run_id, batch_runs.c.status != "completed", free)
            .values(
                status="running",
                owner=owner,
                lease_until=lease_until,
                updated_at=now,
                ended_at=None,
                error=None,
                error_type=None,
                attempts=batch_runs.c.attempts + 1,
            )
        )
        if self._tx(lambda c: c.execute(stmt).rowcount) != 1:
            raise Conflict(
                f"Batch run {run_id!r} is being run by {run.owner} (lease until {run.lease_until}).",
                hint="Wait for it to finish or for its lease to expire, then resume it.",
            )
        return self.get_run(run_id)

    def renew_lease(self, run_id: str, owner: str, *, now: datetime, lease_until: datetime) -> bool:
        """Extend the lease of a run this ``owner`` holds; False when it lost it."""
        stmt = (
            batch_runs.update()
            .where(batch_runs.c.run_id == run_id, batch_runs.c.owner == owner)
            .values(lease_until=lease_until, updated_at=now)
        )
        return bool(self._tx(lambda c: c.execute(stmt).rowcount) == 1)

    def set_model(self, run_id: str, *, name: str, version: int | None) -> None:
        """Record which model version the run uses (resolved when it starts)."""
        stmt = batch_runs.update().where(batch_runs.c.run_id == run_id).values(model_name=name, model_version=version)
        self._tx(lambda c: c.execute(stmt))

    def set_rejects(self, run_id: str, rejects: str) -> None:
        """Record where the run's rejected rows go (redacted)."""
        stmt = batch_runs.update().where(batch_runs.c.run_id == run_id).values(rejects=redact_url(rejects))
        self._tx(lambda c: c.execute(stmt))

    def finish_run(
        self, run_id: str, *, status: str, now: datetime, error: str | None = None, error_type: str | None = None
    ) -> RunRecord:
        """Mark the run ``completed`` or ``failed`` and release its lease."""
        if status not in RUN_STATUSES:
            raise ValueError(f"unknown run status {status!r}")
        stmt = (
            batch_runs.update()
            .where(batch_runs.c.run_id == run_id)
            .values(
                status=status,
                ended_at=now,
                updated_at=now,
                error=redact_url(error) if error else None,
                error_type=error_type,
                owner=None,
                lease_until=None,
            )
        )
        self._tx(lambda c: c.execute(stmt))
        return self.get_run(run_id)

    # --- checkpoints --------------------------------------------------------------------------

    def commit_chunk(self, conn: Connection, run_id: str, commit: ChunkCommit) -> None:
        """Record ``commit`` in the caller's transaction on this database (with the chunk's rows).

        The chunk's row has a primary key on (run, chunk): a second writer of the same chunk
        fails here and its whole transaction, rows included, rolls back.
        """
        conn.execute(batch_chunks.insert().values(**commit.to_row(run_id)))
        self._bump(conn, run_id, [commit])

    @staticmethod
    def _bump(conn: Connection, run_id: str, commits: Iterable[ChunkCommit]) -> None:
        commits = [c for c in commits if c.index != FINAL_CHUNK]
        if not commits:
            return
        last = max(c.committed_at for c in commits)
        conn.execute(
            batch_runs.update()
            .where(batch_runs.c.run_id == run_id)
            .values(
                rows_read=batch_runs.c.rows_read + sum(c.rows_read for c in commits),
                rows_written=batch_runs.c.rows_written + sum(c.rows_written for c in commits),
                rows_rejected=batch_runs.c.rows_rejected + sum(c.rows_rejected for c in commits),
                chunks=batch_runs.c.chunks + len(commits),
                updated_at=last,
            )
        )

    def record_chunks(self, run_id: str, commits: Iterable[ChunkCommit]) -> None:
        """Mirror checkpoints a sink committed in its own database; already known ones are skipped."""
        commits = list(commits)

        def work(conn: Connection) -> None:
            known = set(
                conn.execute(sa.select(batch_chunks.c.chunk_index).where(batch_chunks.c.run_id == run_id)).scalars()
            )
            new = [c for c in commits if c.index not in known]
            if new:
                conn.execute(batch_chunks.insert(), [c.to_row(run_id) for c in new])
                self._bump(conn, run_id, new)

        if commits:
            self._tx(work)

    def chunks(self, run_id: str) -> list[ChunkCommit]:
        """The committed checkpoints of ``run_id`` in chunk order (a :data:`FINAL_CHUNK` marker last)."""
        query = sa.select(batch_chunks).where(batch_chunks.c.run_id == run_id)
        rows = self._tx(lambda c: c.execute(query).mappings().all(), write=False)
        commits = [ChunkCommit.from_row(dict(r)) for r in rows]
        return sorted(commits, key=lambda c: (c.index == FINAL_CHUNK, c.index))

    # --- schedules ----------------------------------------------------------------------------

    def add_schedule(self, schedule: ScheduleRecord) -> ScheduleRecord:
        """Store a new schedule.

        Raises:
            Conflict: A schedule with this name exists.
        """

        def work(conn: Connection) -> None:
            exists = conn.execute(
                sa.select(batch_schedules.c.name).where(batch_schedules.c.name == schedule.name)
            ).first()
            if exists is not None:
                raise Conflict(
                    f"Schedule {schedule.name!r} exists already.",
                    hint=f"Remove it first: modelport schedule remove {schedule.name}",
                )
            row = {name: getattr(schedule, name) for name in schedule.__dataclass_fields__}
            row["job"] = dict(schedule.job)
            conn.execute(batch_schedules.insert().values(**row))

        self._tx(work)
        return self.get_schedule(schedule.name)

    def get_schedule(self, name: str) -> ScheduleRecord:
        """The schedule ``name``.

        Raises:
            NotFound: There is no such schedule.
        """
        row = self._tx(
            lambda c: c.execute(sa.select(batch_schedules).where(batch_schedules.c.name == name)).mappings().first(),
            write=False,
        )
        if row is None:
            raise _schedule_not_found(name)
        return ScheduleRecord(**dict(row))

    def list_schedules(self) -> list[ScheduleRecord]:
        """Every schedule, by name."""
        rows = self._tx(
            lambda c: c.execute(sa.select(batch_schedules).order_by(batch_schedules.c.name)).mappings().all(),
            write=False,
        )
        return [ScheduleRecord(**dict(r)) for r in rows]

    def remove_schedule(self, name: str) -> None:
        """Delete the schedule ``name`` (its past runs stay recorded).

        Raises:
            NotFound: There is no such schedule.
        """
        stmt = batch_schedules.delete().where(batch_schedules.c.name == name)
        if self._tx(lambda c: c.execute(stmt).rowcount) != 1:
            raise _schedule_not_found(name)

    def update_schedule(self, name: str, **values: Any) -> ScheduleRecord:
        """Set columns of the schedule ``name`` (e.g. ``next_run_at``, ``pending_run_id``)."""
        if not values:
            return self.get_schedule(name)
        stmt = batch_schedules.update().where(batch_schedules.c.name == name).values(**values)
        if self._tx(lambda c: c.execute(stmt).rowcount) != 1:
            raise _schedule_not_found(name)
        return self.get_schedule(name)

    def acquire_schedule_lease(self, name: str, owner: str, *, now: datetime, until: datetime) -> bool:
        """Take (or extend) the lease of schedule ``name``; False when another owner holds it."""
        c = batch_schedules.c
        stmt = (
            batch_schedules.update()
            .where(
                c.name == name,
                sa.or_(c.lease_owner.is_(None), c.lease_owner == owner, c.lease_until.is_(None), c.lease_until < now),
            )
            .values(lease_owner=owner, lease_until=until)
        )
        return bool(self._tx(lambda conn: conn.execute(stmt).rowcount) == 1)

    def release_schedule_lease(self, name: str, owner: str) -> None:
        """Give the lease of schedule ``name`` back if ``owner`` holds it."""
        c = batch_schedules.c
        stmt = (
            batch_schedules.update()
            .where(c.name == name, c.lease_owner == owner)
            .values(lease_owner=None, lease_until=None)
        )
        self._tx(lambda conn: conn.execute(stmt))
