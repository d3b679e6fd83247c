"""SQL tables as batch output, with exactly-once chunks in append, upsert and replace modes.

**Exactly once.** Each chunk is one database transaction holding the chunk's rows, its rejected
rows, and its checkpoint row. When the output database *is* the registry database, the checkpoint
is the run store's own ``batch_chunks`` row and the run's counters, updated in that same
transaction. Otherwise the checkpoint goes to a ``modelport_batch_chunks`` table that the sink
keeps in the output database, again in the same transaction, and the run store is brought up to
date right after the commit (and reconciled from the output database when a run resumes). Either
way a chunk is committed with its checkpoint or not at all: a crash, a kill or a lost connection
leaves no partial chunk, and a resumed run starts after the last committed one. Two processes
resuming one run cannot both commit a chunk: the checkpoint's primary key (run, chunk) lets only
the first transaction through.

**Modes.** ``append`` inserts; ``upsert`` inserts or replaces rows with the same key
(``ON CONFLICT (key) DO UPDATE`` on PostgreSQL and SQLite); ``replace`` writes into a staging
table and, at the end, renames the old table away, renames the staging table into place and drops
the old one in one transaction, so readers see the old table or the new one, never half.

**Tables.** A missing output table is created with typed columns and a primary key on the key.
Rejected rows go to ``<table>_rejects`` (reason and original values as JSON). Table and column
names are validated against a strict pattern and quoted by SQLAlchemy; values are always bound
parameters (or PostgreSQL ``COPY`` data, the fast path for inserts: binary where the table's
column types allow it, see :mod:`modelport.batch.pg_copy`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from modelport.batch.database import open_engine, redacted, same_database, translate
from modelport.batch.options import WriteMode
from modelport.batch.pg_copy import PgCopy
from modelport.batch.scoring import REJECTS_SCHEMA, ScoredChunk
from modelport.batch.sinks import SinkContext
from modelport.core.errors import Conflict, InvalidName, ModelportError, Unsupported
from modelport.core.names import validate_sql_identifier
from modelport.registry.db import run_transaction
from modelport.registry.runs import FINAL_CHUNK, ChunkCommit, batch_chunks, chunk_table

WHAT = "output database"
CHECKPOINT_TABLE = "modelport_batch_chunks"
_MAX_IDENTIFIER = 63


def sql_type(arrow_type: pa.DataType) -> sa.types.TypeEngine[Any]:
    """The SQL column type for an Arrow type."""
    if pa.types.is_boolean(arrow_type):
        return sa.Boolean()
    if pa.types.is_integer(arrow_type):
        return (
            sa.BigInteger() if arrow_type.bit_width > 32 or pa.types.is_unsigned_integer(arrow_type) else sa.Integer()
        )
    if pa.types.is_floating(arrow_type):
        return sa.Double() if arrow_type.bit_width == 64 else sa.Float()
    if pa.types.is_decimal(arrow_type):
        return sa.Numeric(arrow_type.precision, arrow_type.scale)
    if pa.types.is_timestamp(arrow_type):
        return sa.DateTime(timezone=arrow_type.tz is not None)
    if pa.types.is_date(arrow_type):
        return sa.Date()
    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type) or pa.types.is_null(arrow_type):
        return sa.Text()
    if pa.types.is_binary(arrow_type):
        return sa.LargeBinary()
    raise Unsupported(f"Cannot store values of type {arrow_type} in a SQL table.", hint="Write to Parquet instead.")


def _split(name: str) -> tuple[str | None, str]:
    schema, _, table = name.rpartition(".")
    return (schema or None), table


class SqlSink:
    """A table in a SQL database.

    Args:
        url: SQLAlchemy URL of the output database.
        table: Output table, optionally ``schema.table``.
        rejects_table: Table for rejected rows (default ``<table>_rejects``).
    """

    default_mode: WriteMode = "append"
    modes: frozenset[WriteMode] = frozenset({"append", "replace", "upsert"})

    def __init__(self, url: str, table: str, *, rejects_table: str | None = None) -> None:
        validate_sql_identifier(table, what="output table name")
        self.url = url
        self.table = table
        self.schema, self.name = _split(table)
        rejects = rejects_table or f"{table}_rejects"
        if len(_split(rejects)[1]) > _MAX_IDENTIFIER:
            raise InvalidName(
                f"The rejects table name {rejects!r} is too long.", hint="Name it with --rejects-table NAME."
            )
        validate_sql_identifier(rejects, what="rejects table name")
        self.rejects_table = rejects
        self.description = f"{redacted(url)} table {table}"
        self._engine: Engine | None = None
        self._shared = False
        self._context: SinkContext | None = None
        self._target: sa.Table | None = None
        self._rejects: sa.Table | None = None
        self._checkpoints: sa.Table = batch_chunks
        self._finalized = False
        self._copier = PgCopy()

    @property
    def rejects_location(self) -> str:
        """``<url> table <table>_rejects`` (password hidden)."""
        return f"{redacted(self.url)} table {self.rejects_table}"

    def _staging_name(self) -> str:
        assert self._context is not None
        return f"_mp_stage_{self._context.run_id[:16]}"

    def _tx(self, work: Any) -> Any:
        assert self._engine is not None
        assert self._context is not None
        try:
            if self._shared:
                store = self._context.store
                return run_transaction(store.engine, store.url, work, write=True)
            with self._engine.begin() as conn:
                return work(conn)
        except sa.exc.SQLAlchemyError as exc:
            raise translate(exc, self.url, what=WHAT, run_id=self._context.run_id) from None

    # --- open ---------------------------------------------------------------------------------

    def open(self, context: SinkContext) -> list[ChunkCommit]:
        """Connect, check the output table fits the mode, and read this run's checkpoints."""
        self._context = context
        if same_database(self.url, context.store.engine):
            self._engine, self._shared = context.store.engine, True
            self._checkpoints = batch_chunks
        else:
            self._engine = open_engine(self.url, what=WHAT)
            self._checkpoints = chunk_table(CHECKPOINT_TABLE)

        def work(conn: Connection) -> list[ChunkCommit]:
            if not self._shared:
                self._checkpoints.create(conn, checkfirst=True)
            if context.mode == "upsert":
                self._check_upsert_key(conn)
            query = (
                sa.select(self._checkpoints)
                .where(self._checkpoints.c.run_id == context.run_id)
                .order_by(self._checkpoints.c.chunk_index)
            )
            return [ChunkCommit.from_row(dict(r)) for r in conn.execute(query).mappings()]

        commits: list[ChunkCommit] = self._tx(work)
        self._finalized = any(c.index == FINAL_CHUNK for c in commits)
        return sorted(commits, key=lambda c: (c.index == FINAL_CHUNK, c.index))

    def _check_upsert_key(self, conn: Connection) -> None:
        assert self._context is not None
        inspector = sa.inspect(conn)
        if not inspector.has_table(self.name, schema=self.schema):
            return
        key = set(self._context.key)
        unique: list[set[str | None]] = [
            set(inspector.get_pk_constraint(self.name, schema=self.schema).get("constrained_columns") or [])
        ]
        unique += [set(u["column_names"]) for u in inspector.get_unique_constraints(self.name, schema=self.schema)]
        unique += [
            set(i["column_names"]) for i in inspector.get_indexes(self.name, schema=self.schema) if i.get("unique")
        ]
        if key not in unique:
            raise Conflict(
                f"Table {self.table!r} has no primary key or unique constraint on ({', '.join(sorted(key))}); "
                "upsert needs one.",
                hint=f"Add one (ALTER TABLE {self.table} ADD PRIMARY KEY (...)), or write to a new table that "
                "modelport creates with the key as primary key.",
            )

    # --- tables -------------------------------------------------------------------------------

    def _output_table(self, conn: Connection, schema: pa.Schema) -> sa.Table:
        assert self._context is not None
        name = self._staging_name() if self._context.mode == "replace" else self.name
        if sa.inspect(conn).has_table(name, schema=self.schema):
            table = sa.Table(name, sa.MetaData(), schema=self.schema, autoload_with=conn)
            missing = [c for c in schema.names if c not in table.columns]
            if missing:
                raise Conflict(
                    f"Table {self.table!r} has no column(s) {', '.join(missing)} that this job writes.",
                    hint="Write to a new table, or rebuild this one with --mode replace.",
                )
            return table
        key = self._context.key
        columns = [sa.Column(f.name, sql_type(f.type), nullable=f.name not in key) for f in schema]
        constraints = [sa.PrimaryKeyConstraint(*key)] if key else []
        table = sa.Table(name, sa.MetaData(), *columns, *constraints, schema=self.schema)
        table.create(conn)
        return table

    def _rejects_table(self, conn: Connection) -> sa.Table:
        schema, name = _split(self.rejects_table)
        columns = [sa.Column(f.name, sql_type(f.type), nullable=False) for f in REJECTS_SCHEMA]
        table = sa.Table(name, sa.MetaData(), *columns, sa.PrimaryKeyConstraint("run_id", "row"), schema=schema)
        table.create(conn, checkfirst=True)
        return table

    # --- write --------------------------------------------------------------------------------

    def write(self, chunk: ScoredChunk, commit: ChunkCommit) -> bool:
        """Insert (or upsert) the rows, the rejects and the checkpoint in one transaction."""
        assert self._context is not None
        context = self._context

        def work(conn: Connection) -> None:
            if self._target is None:
                self._target = self._output_table(conn, chunk.output.schema)
            if chunk.output.num_rows:
                if context.mode == "upsert":
                    _upsert(conn, self._target, chunk.output, context.key, self._copier)
                else:
                    _insert(conn, self._target, chunk.output, self._copier)
            if chunk.rejects.num_rows:
                if self._rejects is None:
                    self._rejects = self._rejects_table(conn)
                _insert(conn, self._rejects, chunk.rejects, self._copier)
            if self._shared:
                context.store.commit_chunk(conn, context.run_id, commit)
            else:
                conn.execute(self._checkpoints.insert().values(**commit.to_row(context.run_id)))

        try:
            self._tx(work)
        except ModelportError:
            self._target = self._rejects = None  # the DDL may have been rolled back with the chunk
            raise
        return self._shared

    # --- finish -------------------------------------------------------------------------------

    def finish(self) -> None:
        """Swap the staging table into place (``replace``) and record that the output is final."""
        assert self._context is not None
        assert self._engine is not None
        if self._finalized:
            return
        context = self._context
        staging = self._staging_name()

        def work(conn: Connection) -> None:
            inspector = sa.inspect(conn)
            if context.mode == "replace" and inspector.has_table(staging, schema=self.schema):
                quote = conn.dialect.identifier_preparer.quote
                prefix = f"{quote(self.schema)}." if self.schema else ""
                old = f"_mp_old_{context.run_id[:16]}"
                had_table = inspector.has_table(self.name, schema=self.schema)
                if had_table:
                    conn.exec_driver_sql(f"ALTER TABLE {prefix}{quote(self.name)} RENAME TO {quote(old)}")
                conn.exec_driver_sql(f"ALTER TABLE {prefix}{quote(staging)} RENAME TO {quote(self.name)}")
                if had_table:
                    conn.exec_driver_sql(f"DROP TABLE {prefix}{quote(old)}")
            marker = ChunkCommit(FINAL_CHUNK, 0, 0, 0, {}, datetime.now(UTC))
            conn.execute(self._checkpoints.insert().values(**marker.to_row(context.run_id)))

        self._tx(work)
        self._finalized = True

    def close(self) -> None:
        """Dispose of the engine this sink created."""
        if self._engine is not None and not self._shared:
            self._engine.dispose()
        self._engine = None


def _insert(conn: Connection, table: sa.Table, rows: pa.Table, copier: PgCopy) -> None:
    if conn.dialect.name == "postgresql":
        copier.write(conn, table, rows)
    elif conn.dialect.name == "sqlite":
        _executemany(conn, table.insert(), rows)
    else:
        conn.execute(table.insert(), rows.to_pylist())


def _executemany(conn: Connection, statement: Any, rows: pa.Table) -> None:
    """SQLite: one compiled statement, the driver's ``executemany`` over plain tuples (bound values)."""
    names = rows.schema.names
    compiled = statement.values({n: sa.bindparam(n) for n in names}).compile(dialect=conn.dialect)
    order = [names.index(p) for p in compiled.positiontup]
    columns = [_sqlite_values(rows.column(i)) for i in order]
    conn.exec_driver_sql(str(compiled), list(zip(*columns, strict=True)))


def _sqlite_values(column: pa.ChunkedArray) -> list[Any]:
    """Python values SQLite stores as SQLAlchemy would (timestamps as ``YYYY-MM-DD HH:MM:SS.ffffff``)."""
    if pa.types.is_timestamp(column.type):
        return pc.strftime(column, format="%Y-%m-%d %H:%M:%S").to_pylist()  # type: ignore[no-any-return]
    if pa.types.is_date(column.type):
        return pc.strftime(column, format="%Y-%m-%d").to_pylist()  # type: ignore[no-any-return]
    if pa.types.is_decimal(column.type):
        return [None if v is None else float(v) for v in column.to_pylist()]
    return column.to_pylist()  # type: ignore[no-any-return]


def _upsert(conn: Connection, table: sa.Table, rows: pa.Table, key: tuple[str, ...], copier: PgCopy) -> None:
    names = rows.schema.names
    if conn.dialect.name == "postgresql":
        temp = sa.Table(
            "_mp_upsert",
            sa.MetaData(),
            *(sa.Column(c.name, c.type) for c in table.columns if c.name in names),
            prefixes=["TEMPORARY"],
            postgresql_on_commit="DROP",
        )
        temp.create(conn)
        copier.write(conn, temp, rows)
        pg = postgresql.insert(table).from_select(names, sa.select(*(temp.c[n] for n in names)))
        conn.execute(
            pg.on_conflict_do_update(index_elements=list(key), set_={n: pg.excluded[n] for n in names if n not in key})
        )
        temp.drop(conn)
    elif conn.dialect.name == "sqlite":
        lite = sqlite.insert(table)
        values = lite.values({n: sa.bindparam(n) for n in names})
        stmt = values.on_conflict_do_update(
            index_elements=list(key), set_={n: values.excluded[n] for n in names if n not in key}
        )
        compiled = stmt.compile(dialect=conn.dialect)
        order = [names.index(p) for p in compiled.positiontup or []]
        columns = [_sqlite_values(rows.column(i)) for i in order]
        conn.exec_driver_sql(str(compiled), list(zip(*columns, strict=True)))
    else:
        raise Unsupported(
            f"Upsert is not supported on {conn.dialect.name}.", hint="Use PostgreSQL or SQLite, or --mode append."
        )
