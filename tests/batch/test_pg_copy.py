"""PostgreSQL COPY: binary into tables whose column types fit, CSV otherwise, same values either way."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime

import psycopg
import pyarrow as pa
import pytest
import sqlalchemy as sa

from modelport.batch.pg_copy import PgCopy
from modelport.batch.sql_sink import sql_type

ROWS = pa.table(
    {
        "id": pa.array([1, 2, 3], pa.int64()),
        "score": pa.array([0.25, None, -1e300], pa.float64()),
        "label": pa.array(["yes", "ünïcode", None], pa.string()),
        "flag": pa.array([True, False, None], pa.bool_()),
        "small": pa.array([7, -8, 9], pa.int32()),
        "day": pa.array([date(2026, 1, 2), None, date(1999, 12, 31)], pa.date32()),
        "scored_at": pa.array(
            [datetime(2026, 11, 25, 1, 2, 3, 456789, tzinfo=UTC), None, datetime(1970, 1, 1, tzinfo=UTC)],
            pa.timestamp("us", tz="UTC"),
        ),
    }
)


@pytest.fixture
def engine(pg_url: str) -> Iterator[sa.Engine]:
    engine = sa.create_engine(pg_url)
    yield engine
    engine.dispose()


def _table(engine: sa.Engine, name: str, types: dict[str, sa.types.TypeEngine[object]] | None = None) -> sa.Table:
    columns = [sa.Column(f.name, (types or {}).get(f.name, sql_type(f.type))) for f in ROWS.schema]
    table = sa.Table(name, sa.MetaData(), *columns)
    table.create(engine)
    return table


def _read(engine: sa.Engine, table: sa.Table) -> list[tuple[object, ...]]:
    with engine.connect() as conn:
        return [tuple(row) for row in conn.execute(sa.select(table).order_by(table.c.id)).all()]


def _expected() -> list[tuple[object, ...]]:
    columns = [ROWS.column(name).to_pylist() for name in ROWS.schema.names]
    return list(zip(*columns, strict=True))


def test_a_table_made_from_the_arrow_types_gets_binary_and_every_value_back(engine: sa.Engine) -> None:
    table = _table(engine, "fits")
    copier = PgCopy()
    with engine.begin() as conn:
        assert copier.write(conn, table, ROWS) == "binary"
        assert copier.write(conn, table, ROWS.slice(0, 0)) == "binary"  # an empty chunk is fine
    assert _read(engine, table) == _expected()


def test_other_column_types_get_csv_and_postgres_converts(engine: sa.Engine) -> None:
    table = _table(engine, "user_made", {"score": sa.Numeric(20, 4), "scored_at": sa.Text()})
    with engine.begin() as conn:
        assert PgCopy().write(conn, table, ROWS.slice(0, 2)) == "csv"
    rows = _read(engine, table)
    assert [float(r[1]) if r[1] is not None else None for r in rows] == [0.25, None]
    assert rows[0][6] == "2026-11-25 01:02:03.456789Z"  # Arrow's CSV text, stored as given


def test_binary_can_be_turned_off_with_the_same_result(engine: sa.Engine) -> None:
    binary, text = _table(engine, "via_binary"), _table(engine, "via_csv")
    with engine.begin() as conn:
        assert PgCopy().write(conn, binary, ROWS) == "binary"
        assert PgCopy(binary=False).write(conn, text, ROWS) == "csv"
    assert _read(engine, binary) == _read(engine, text)


def test_a_failed_copy_rolls_back_with_its_transaction(engine: sa.Engine) -> None:
    table = _table(engine, "keyed")
    with engine.begin() as conn:
        conn.execute(sa.text("ALTER TABLE keyed ADD PRIMARY KEY (id)"))
    copier = PgCopy()

    def twice() -> None:
        with engine.begin() as conn:
            copier.write(conn, table, ROWS)
            copier.write(conn, table, ROWS)  # the same keys again

    with pytest.raises(psycopg.errors.UniqueViolation):
        twice()
    assert _read(engine, table) == []
