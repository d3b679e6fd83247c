"""What a batch job reads: the :class:`Source` protocol, its chunks, and their positions.

A source yields the input as Arrow tables of exactly ``chunk_size`` rows (the last may be
shorter), in a deterministic order, each with the *position* just after it: a small JSON-able
mapping (``{"rows": n}``, plus ``"key"`` for SQL sources read in key order) that the job stores
as the chunk's checkpoint. Reading again from a stored position yields exactly the rows that
followed it, which is what makes resuming exact. Implementations: :mod:`.file_source` (CSV,
Parquet, JSON Lines) and :mod:`.sql_source` (a table or a query through SQLAlchemy).
"""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol

import pyarrow as pa

from modelport.core.errors import ValidationError

Position = Mapping[str, Any]
"""Where a source stands after a chunk, e.g. ``{"rows": 150000}``; JSON-able."""

START: Position = {"rows": 0}


@dataclass(frozen=True)
class SourceChunk:
    """A chunk of input rows.

    Attributes:
        table: The rows (only the requested columns).
        start_row: 0-based number, in the whole input, of the chunk's first row.
        position: The source position just after this chunk.
    """

    table: pa.Table
    start_row: int
    position: Position = field(hash=False)

    @property
    def num_rows(self) -> int:
        """Rows in the chunk."""
        return int(self.table.num_rows)


class Source(Protocol):
    """Input of a batch job.

    Attributes:
        description: What is read, for run records and messages (URL passwords hidden).
    """

    description: str

    def open(self) -> None:
        """Check the source exists and can be read (the first I/O happens here)."""
        ...

    def count_rows(self) -> int | None:
        """Total input rows when cheap to know (for progress and ETA), else ``None``."""
        ...

    def read(
        self,
        chunk_size: int,
        *,
        start: Position = START,
        columns: Sequence[str] | None = None,
        as_text: Collection[str] = (),
        order_by: Sequence[str] = (),
    ) -> Iterator[SourceChunk]:
        """Yield the rows after ``start`` in chunks of ``chunk_size``.

        Args:
            chunk_size: Rows per chunk.
            start: A position a previous read yielded (resume), or :data:`START`.
            columns: Columns to read (all when ``None``); a missing one raises ValidationError.
            as_text: Columns to keep as raw text where the format has no types (CSV), so that a
                bad value rejects its row instead of failing the whole read.
            order_by: Key columns; sources that can (SQL) read in this order and resume after the
                last key, so new rows arriving meanwhile are neither skipped nor duplicated.
        """
        ...

    def close(self) -> None:
        """Release connections and file handles."""
        ...


def rechunk(pieces: Iterable[pa.Table | pa.RecordBatch], chunk_size: int) -> Iterator[pa.Table]:
    """Regroup Arrow tables/batches of any sizes into tables of exactly ``chunk_size`` rows."""
    pending: list[pa.Table] = []
    count = 0
    for piece in pieces:
        table = pa.Table.from_batches([piece]) if isinstance(piece, pa.RecordBatch) else piece
        if table.num_rows == 0:
            continue
        pending.append(table)
        count += table.num_rows
        while count >= chunk_size:
            merged = _concat(pending)
            yield merged.slice(0, chunk_size)
            rest = merged.slice(chunk_size)
            pending = [rest] if rest.num_rows else []
            count = rest.num_rows
    if count:
        yield _concat(pending)


def _concat(tables: list[pa.Table]) -> pa.Table:
    if len(tables) == 1:
        return tables[0]
    return pa.concat_tables(tables, promote_options="permissive").combine_chunks()


def missing_columns(available: Sequence[str], wanted: Sequence[str] | None, where: str) -> None:
    """Raise :class:`ValidationError` when a ``wanted`` column is not in ``available``."""
    if wanted is None:
        return
    present = set(available)
    missing = [c for c in wanted if c not in present]
    if missing:
        raise ValidationError(
            f"Missing column {missing[0]!r} in {where}"
            + (f" (and {len(missing) - 1} more: {', '.join(missing[1:6])})" if len(missing) > 1 else "")
            + ".",
            hint=f"The job needs the columns: {', '.join(wanted)}; the input has: {', '.join(list(available)[:30])}.",
        )


def encode_key(values: Sequence[Any]) -> list[Any]:
    """Key values as JSON-able items that :func:`decode_key` turns back into the same Python values."""
    out: list[Any] = []
    for value in values:
        if isinstance(value, dt.datetime):
            out.append({"t": "datetime", "v": value.isoformat()})
        elif isinstance(value, dt.date):
            out.append({"t": "date", "v": value.isoformat()})
        elif isinstance(value, Decimal):
            out.append({"t": "decimal", "v": str(value)})
        elif isinstance(value, bytes):
            out.append({"t": "bytes", "v": base64.b64encode(value).decode("ascii")})
        else:
            out.append(value.item() if hasattr(value, "item") else value)
    return out


def decode_key(items: Sequence[Any]) -> list[Any]:
    """The inverse of :func:`encode_key`."""
    decoders: dict[str, Callable[[str], Any]] = {
        "datetime": dt.datetime.fromisoformat,
        "date": dt.date.fromisoformat,
        "decimal": Decimal,
        "bytes": base64.b64decode,
    }
    return [decoders[item["t"]](item["v"]) if isinstance(item, Mapping) else item for item in items]
