"""PostgreSQL ``COPY ... FROM STDIN``: binary where the table's column types allow it, else CSV.

Binary COPY (encoded from Arrow by ``pgpq``) spares both sides the text round trip: on a scored
chunk (key, prediction, model, version, run id, timestamp) it costs about a tenth of the client
time of Arrow's CSV writer and three quarters of the server time of parsing CSV. The binary format
carries no type information, so it is only used when every column of the target table has exactly
the PostgreSQL type the encoder writes for its Arrow type (what :func:`sql_type` creates, for a
table modelport made); any other table, or a missing ``pgpq``, gets CSV, which PostgreSQL parses
into whatever the columns are.
"""

from __future__ import annotations

import io
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import sqlalchemy as sa
from sqlalchemy.engine import Connection

_FITS: dict[str, frozenset[str]] = {
    "Int2": frozenset({"smallint"}),
    "Int4": frozenset({"integer"}),
    "Int8": frozenset({"bigint"}),
    "Float4": frozenset({"real"}),
    "Float8": frozenset({"double precision"}),
    "Bool": frozenset({"boolean"}),
    "Text": frozenset({"text", "character varying"}),
    "Date": frozenset({"date"}),
}
"""The PostgreSQL types (``format_type`` names, without modifiers) each binary encoding fits."""


class PgCopy:
    """Writes Arrow tables into PostgreSQL tables with ``COPY``; remembers which tables take binary.

    Args:
        binary: Use binary COPY where it fits (``False`` forces CSV, e.g. for comparisons).
    """

    def __init__(self, *, binary: bool = True) -> None:
        self.binary = binary
        self._fits: dict[tuple[str, pa.Schema], bool] = {}

    def write(self, conn: Connection, table: sa.Table, rows: pa.Table) -> str:
        """COPY ``rows`` into ``table`` inside ``conn``'s transaction; return the format used."""
        preparer = conn.dialect.identifier_preparer
        target = preparer.format_table(table)
        columns = ", ".join(preparer.quote(name) for name in rows.schema.names)
        raw = conn.connection.driver_connection
        assert raw is not None
        encoder = self._encoder(conn, target, rows.schema)
        if encoder is None:
            buffer = io.BytesIO()
            pacsv.write_csv(rows, buffer, pacsv.WriteOptions(include_header=False))
            with raw.cursor() as cursor, cursor.copy(f"COPY {target} ({columns}) FROM STDIN (FORMAT csv)") as copy:
                copy.write(buffer.getbuffer())
            return "csv"
        with raw.cursor() as cursor, cursor.copy(f"COPY {target} ({columns}) FROM STDIN (FORMAT binary)") as copy:
            copy.write(encoder.write_header())
            for batch in rows.to_batches():
                copy.write(encoder.write_batch(batch))
            copy.write(encoder.finish())
        return "binary"

    def _encoder(self, conn: Connection, target: str, schema: pa.Schema) -> Any:
        if not self.binary:
            return None
        try:
            from pgpq import ArrowToPostgresBinaryEncoder
        except ImportError:
            return None
        key = (target, schema)
        fits = self._fits.get(key)
        if fits is None:
            fits = self._fits[key] = _binary_fits(conn, target, schema)
        return ArrowToPostgresBinaryEncoder(schema) if fits else None


def _binary_fits(conn: Connection, target: str, schema: pa.Schema) -> bool:
    """Whether every column of ``schema`` has, in ``target``, the type its binary encoding writes."""
    from pgpq import ArrowToPostgresBinaryEncoder

    try:
        encoded = ArrowToPostgresBinaryEncoder(schema).schema().columns
    except Exception:  # a type pgpq cannot encode: CSV
        return False
    rows = conn.execute(
        sa.text(
            "SELECT a.attname, format_type(a.atttypid, NULL) FROM pg_attribute a "
            "WHERE a.attrelid = CAST(:target AS regclass) AND a.attnum > 0 AND NOT a.attisdropped"
        ),
        {"target": target},
    ).all()
    found: dict[str, str] = {str(name): str(kind) for name, kind in rows}
    for field, column in zip(schema, encoded, strict=True):
        kind = type(column.data_type).__name__
        if pa.types.is_timestamp(field.type):
            wanted = frozenset({"timestamp with time zone" if field.type.tz else "timestamp without time zone"})
            if field.type.unit != "us":
                return False
        else:
            wanted = _FITS.get(kind, frozenset())
        if found.get(field.name) not in wanted:
            return False
    return True
