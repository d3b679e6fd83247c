"""Files as batch input: CSV, Parquet and JSON Lines; one file, a glob, or a folder.

Files are read in sorted path order, each in streaming Arrow batches (``pyarrow.parquet`` row
groups, ``pyarrow.csv`` blocks, JSON Lines line by line), regrouped into chunks of exactly
``chunk_size`` rows, so memory holds a few chunks whatever the input size. The position after a
chunk is the count of rows read so far; resuming skips that many rows (whole Parquet row groups
and files are skipped from their metadata, without reading them).
"""

from __future__ import annotations

import glob
import os
from collections.abc import Collection, Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

import orjson
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from modelport.batch.sources import START, Position, SourceChunk, missing_columns, rechunk
from modelport.core.errors import NotFound, Unsupported, ValidationError

FileFormat = Literal["csv", "parquet", "jsonl"]

SUFFIXES: dict[str, FileFormat] = {
    ".csv": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
}
CSV_BLOCK_BYTES = 4 << 20
_BATCH_ROWS = 65_536


def format_of(path: str, given: str | None = None) -> FileFormat:
    """The file format named by ``given`` or by the suffix of ``path``.

    Raises:
        Unsupported: Neither names a known format.
    """
    if given is not None:
        if given not in ("csv", "parquet", "jsonl"):
            raise Unsupported(f"Unknown file format {given!r}.", hint="Use one of: csv, parquet, jsonl.")
        return given  # type: ignore[return-value]
    suffix = Path(path.removesuffix(".gz")).suffix.lower()
    if suffix in SUFFIXES:
        return SUFFIXES[suffix]
    raise Unsupported(
        f"Cannot tell the format of {path!r} from its name.",
        hint="Name files .csv, .parquet or .jsonl, or give the format explicitly (--format).",
    )


class FileSource:
    """CSV, Parquet or JSON Lines files.

    Args:
        location: A file, a folder (every file of the format inside it, recursively) or a glob.
        format: ``csv``, ``parquet`` or ``jsonl``; by default from the file names.
    """

    def __init__(self, location: str | Path, *, format: str | None = None) -> None:
        self.location = str(location)
        self._format_given = format
        self._files: list[Path] = []
        self._format: FileFormat | None = None
        self.description = os.path.abspath(self.location)

    @property
    def format(self) -> FileFormat:
        """The resolved format (after :meth:`open`)."""
        if self._format is None:
            self.open()
        assert self._format is not None
        return self._format

    def open(self) -> None:
        """Find the files; raise NotFound when there are none."""
        if self._format is not None:
            return
        files = self._find()
        if not files:
            raise NotFound(
                f"No input files at {self.location!r}.",
                hint="Give an existing file, a folder holding .csv/.parquet/.jsonl files, or a glob like 'data/*.csv'.",
            )
        self._format = format_of(str(files[0]), self._format_given)
        if self._format_given is None and Path(self.location).is_dir():
            files = [f for f in files if SUFFIXES.get(Path(f.name.removesuffix(".gz")).suffix.lower()) == self._format]
        self._files = files

    def _find(self) -> list[Path]:
        path = Path(self.location)
        if any(ch in self.location for ch in "*?["):
            return sorted(Path(p) for p in glob.glob(self.location, recursive=True) if Path(p).is_file())
        if path.is_dir():
            found = [
                p
                for p in path.rglob("*")
                if p.is_file()
                and not any(part.startswith((".", "_")) for part in p.relative_to(path).parts)
                and (self._format_given is not None or Path(p.name.removesuffix(".gz")).suffix.lower() in SUFFIXES)
            ]
            return sorted(found)
        return [path] if path.is_file() else []

    def count_rows(self) -> int | None:
        """Exact for Parquet (from file metadata); ``None`` for CSV and JSON Lines."""
        if self.format != "parquet":
            return None
        return int(sum(pq.ParquetFile(f).metadata.num_rows for f in self._files))

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
        del order_by  # files are read in their stored order
        self.open()
        skip = int(start.get("rows", 0))
        offset = skip
        for table in rechunk(self._pieces(skip, columns, as_text, min(chunk_size, _BATCH_ROWS)), chunk_size):
            first = offset
            offset += table.num_rows
            yield SourceChunk(table=table, start_row=first, position={"rows": offset})

    def _pieces(
        self, skip: int, columns: Sequence[str] | None, as_text: Collection[str], batch_rows: int
    ) -> Iterator[pa.Table]:
        for path in self._files:
            if self.format == "parquet":
                skip, pieces = _parquet_pieces(path, skip, columns, batch_rows)
            elif self.format == "csv":
                pieces = _csv_pieces(path, columns, as_text)
            else:
                pieces = _jsonl_pieces(path, columns)
            for piece in pieces:
                if skip >= piece.num_rows:
                    skip -= piece.num_rows
                    continue
                yield piece.slice(skip) if skip else piece
                skip = 0

    def close(self) -> None:
        """Nothing stays open between reads."""


def _parquet_pieces(
    path: Path, skip: int, columns: Sequence[str] | None, batch_rows: int
) -> tuple[int, Iterator[pa.Table]]:
    """Skip whole row groups from the metadata; return the rows still to skip and the batches.

    ``pre_buffer`` is off: with it, pyarrow buffers every requested row group ahead of time, so
    memory would grow with the file.
    """
    reader = pq.ParquetFile(path, pre_buffer=False)
    missing_columns(reader.schema_arrow.names, columns, str(path))
    groups: list[int] = []
    for index in range(reader.metadata.num_row_groups):
        rows = reader.metadata.row_group(index).num_rows
        if not groups and skip >= rows:
            skip -= rows
            continue
        groups.append(index)
    if not groups:
        return skip, iter(())
    batches = reader.iter_batches(batch_size=batch_rows, row_groups=groups, columns=list(columns) if columns else None)
    return skip, (pa.Table.from_batches([b]) for b in batches)


def _csv_pieces(path: Path, columns: Sequence[str] | None, as_text: Collection[str]) -> Iterator[pa.Table]:
    read_options = pacsv.ReadOptions(block_size=CSV_BLOCK_BYTES)
    try:
        header = pacsv.open_csv(path, read_options=read_options).schema.names
    except pa.ArrowInvalid as exc:
        raise ValidationError(
            f"Cannot read {path} as CSV: {exc}", hint="Check the file is comma-separated text."
        ) from exc
    missing_columns(header, columns, str(path))
    convert = pacsv.ConvertOptions(
        include_columns=list(columns) if columns else None,
        column_types={c: pa.string() for c in as_text if c in header},
        strings_can_be_null=True,
    )
    reader = pacsv.open_csv(path, read_options=read_options, convert_options=convert)
    try:
        for batch in reader:
            yield pa.Table.from_batches([batch])
    except pa.ArrowInvalid as exc:
        raise ValidationError(
            f"Cannot read {path}: {exc}",
            hint="A column changed type part-way through the file; list it among the model's input columns "
            "or clean the file.",
        ) from exc


def _jsonl_pieces(path: Path, columns: Sequence[str] | None) -> Iterator[pa.Table]:
    records: list[dict[str, Any]] = []
    with path.open("rb") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                raise ValidationError(
                    f"{path}, line {number}: not valid JSON ({exc}).",
                    hint="Write one JSON object per line (JSON Lines).",
                ) from exc
            if not isinstance(record, dict):
                raise ValidationError(f"{path}, line {number}: not a JSON object.", hint="One object per line.")
            if not records and columns is not None:
                missing_columns(list(record), columns, f"{path} (first record)")
            records.append(record)
            if len(records) >= _BATCH_ROWS:
                yield _records_table(records, columns)
                records = []
    if records:
        yield _records_table(records, columns)


def _records_table(records: list[dict[str, Any]], columns: Sequence[str] | None) -> pa.Table:
    names = list(columns) if columns is not None else list(dict.fromkeys(k for r in records for k in r))
    arrays = []
    for name in names:
        values = [r.get(name) for r in records]
        try:
            arrays.append(pa.array(values))
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
            text = [v if v is None or isinstance(v, str) else orjson.dumps(v).decode() for v in values]
            arrays.append(pa.array(text, pa.string()))
    return pa.table(dict(zip(names, arrays, strict=True)))
