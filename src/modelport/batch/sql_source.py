"""A SQL table or query as batch input, through any SQLAlchemy URL.

Rows are streamed with a server-side cursor (``stream_results`` + ``yield_per``), so memory
holds one chunk whatever the table size, and turned into Arrow columns. With a key, rows are read
``ORDER BY key`` and the position after a chunk records the last key; a resumed read continues
with ``WHERE key > :last`` (keyset pagination): rows inserted meanwhile are neither skipped nor
read twice. Without a key, the database's own order is used and a resumed read skips the rows
already read (``OFFSET``), which is exact only while the input does not change. Table and column
names are validated and quoted by SQLAlchemy; a ``query`` is the user's own SQL, run as given.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Sequence
from typing import Any

import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from modelport.batch.database import open_engine, redacted, translate
from modelport.batch.sources import START, Position, SourceChunk, decode_key, encode_key, missing_columns
from modelport.core.errors import BadRequest, NotFound
from modelport.core.names import validate_sql_identifier

WHAT = "input database"


class SqlSource:
    """Rows of a table, or of a query, in a SQL database.

    Args:
        url: SQLAlchemy URL (``postgresql://...``, ``sqlite:///file.db``).
        table: A table name, optionally ``schema.table``.
        query: A ``SELECT`` statement (instead of ``table``).
        engine: An engine to use instead of creating one (it is not disposed on close).
    """

    def __init__(
        self, url: str, *, table: str | None = None, query: str | None = None, engine: Engine | None = None
    ) -> None:
        if (table is None) == (query is None):
            raise BadRequest(
                f"A database input needs exactly one of a table or a query (got table={table!r}, query={query!r}).",
                hint="Pass --input-table NAME or --query 'SELECT ...'.",
            )
        if table is not None:
            validate_sql_identifier(table, what="input table name")
        self.url = url
        self.table = table
        self.query = query.strip().rstrip(";").strip() if query is not None else None
        self._engine = engine
        self._owns_engine = engine is None
        self.description = f"{redacted(url)} " + (f"table {table}" if table else f"query {self.query!r}")

    def _db(self) -> Engine:
        if self._engine is None:
            self._engine = open_engine(self.url, what=WHAT)
        return self._engine

    def open(self) -> None:
        """Connect once and check the table exists."""
        try:
            with self._db().connect() as conn:
                if self.table is not None:
                    self._reflect(conn)
        except sa.exc.SQLAlchemyError as exc:
            raise translate(exc, self.url, what=WHAT) from None

    def _reflect(self, conn: Connection) -> sa.Table:
        schema, _, name = self.table.rpartition(".") if self.table else ("", "", "")
        if not sa.inspect(conn).has_table(name, schema=schema or None):
            raise NotFound(
                f"No table {self.table!r} in {redacted(self.url)}.",
                hint="Check the table name (and schema), or read with --query instead.",
            )
        return sa.Table(name, sa.MetaData(), schema=schema or None, autoload_with=conn)

    def count_rows(self) -> int | None:
        """``COUNT(*)`` of a table; ``None`` for a query (it would run the query twice)."""
        if self.table is None:
            return None
        try:
            with self._db().connect() as conn:
                table = self._reflect(conn)
                return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())
        except sa.exc.SQLAlchemyError as exc:
            raise translate(exc, self.url, what=WHAT) from None

    def _statement(self, conn: Connection, columns: Sequence[str] | None, order_by: Sequence[str]) -> sa.Select[Any]:
        if self.table is not None:
            selectable: sa.FromClause = self._reflect(conn)
        else:
            probe = conn.execute(sa.text(f"SELECT * FROM ({self.query}) AS mp_probe WHERE 1 = 0"))
            names = list(probe.keys())
            probe.close()
            selectable = sa.text(self.query or "").columns(*(sa.column(n) for n in names)).subquery("mp_source")
        available = [c.name for c in selectable.columns]
        missing_columns(available, columns, self.description)
        missing_columns(available, order_by, self.description + " (key)")
        wanted = list(columns) if columns is not None else available
        return sa.select(*(selectable.columns[c] for c in wanted)).order_by(*(selectable.columns[c] for c in order_by))

    def read(
        self,
        chunk_size: int,
        *,
        start: Position = START,
        columns: Sequence[str] | None = None,
        as_text: Collection[str] = (),
        order_by: Sequence[str] = (),
    ) -> Iterator[SourceChunk]:
        """Yield chunks after ``start`` (see :meth:`modelport.batch.sources.Source.read`)."""
        del as_text  # database columns are typed already
        offset = int(start.get("rows", 0))
        if columns is not None:
            columns = list(dict.fromkeys([*columns, *order_by]))
        try:
            with self._db().connect() as conn:
                stmt = self._statement(conn, columns, order_by)
                if order_by and start.get("key") is not None:
                    last = decode_key(start["key"])
                    keys = [stmt.selected_columns[c] for c in order_by]
                    stmt = stmt.where(sa.tuple_(*keys) > sa.tuple_(*last) if len(keys) > 1 else keys[0] > last[0])
                elif offset:
                    stmt = stmt.offset(offset)
                result = conn.execution_options(stream_results=True, yield_per=chunk_size).execute(stmt)
                names = list(result.keys())
                for rows in result.partitions(chunk_size):
                    table = _to_arrow(names, rows)
                    first = offset
                    offset += table.num_rows
                    position: dict[str, Any] = {"rows": offset}
                    if order_by:
                        last_row = rows[-1]
                        position["key"] = encode_key([last_row[names.index(c)] for c in order_by])
                    yield SourceChunk(table=table, start_row=first, position=position)
        except sa.exc.SQLAlchemyError as exc:
            raise translate(exc, self.url, what=WHAT) from None

    def close(self) -> None:
        """Dispose of the engine this source created."""
        if self._engine is not None and self._owns_engine:
            self._engine.dispose()
            self._engine = None


def _to_arrow(names: list[str], rows: Sequence[Sequence[Any]]) -> pa.Table:
    columns = list(zip(*rows, strict=True)) if rows else [() for _ in names]
    arrays = []
    for values in columns:
        try:
            arrays.append(pa.array(values))
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
            arrays.append(pa.array([None if v is None else str(v) for v in values], pa.string()))
    return pa.table(dict(zip(names, arrays, strict=True)))
