"""Prediction records → an Arrow table: the Parquet layout of the prediction log (schema version 1).

Fixed columns carry the record fields, ``inputs`` and ``outputs`` as JSON text (NaN and infinities
as ``null``). Then, for fast DuckDB scans, one flattened column per input column and per output
whose values in the batch share one kind: ``inputs.<name>`` / ``outputs.<name>`` as DOUBLE
(numbers), BOOLEAN, VARCHAR, or LIST<DOUBLE> (vectors such as ``predict_proba``). A key with
mixed kinds, or only missing values, or beyond the first :data:`MAX_FLAT_COLUMNS` keys, lives in
the JSON column only. Used by :mod:`modelport.runtime.predlog` in its background thread.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import Any, Protocol

import numpy as np
import pyarrow as pa

MAX_FLAT_COLUMNS = 256
"""Most flattened columns per side (inputs, outputs) in one file."""

BASE_SCHEMA = pa.schema(
    [
        ("schema_version", pa.int16()),
        ("ts", pa.timestamp("us", tz="UTC")),
        ("model", pa.string()),
        ("version", pa.int64()),
        ("request_id", pa.string()),
        ("row", pa.int32()),
        ("route", pa.string()),
        ("source", pa.string()),
        ("kind", pa.string()),
        ("inputs", pa.string()),
        ("outputs", pa.string()),
        ("latency_ms", pa.float64()),
        ("status", pa.string()),
        ("error_type", pa.string()),
        ("error", pa.string()),
    ]
)
_FLAT_TYPES = {"number": pa.float64(), "bool": pa.bool_(), "string": pa.string(), "vector": pa.list_(pa.float64())}


class _Record(Protocol):
    """The fields of :class:`~modelport.runtime.predlog.PredictionRecord` read here."""

    @property
    def model(self) -> str: ...
    @property
    def version(self) -> int | None: ...
    @property
    def request_id(self) -> str: ...
    @property
    def row(self) -> int: ...
    @property
    def ts(self) -> datetime: ...
    @property
    def route(self) -> str: ...
    @property
    def source(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def inputs(self) -> Mapping[str, Any] | None: ...
    @property
    def outputs(self) -> Mapping[str, Any] | None: ...
    @property
    def latency_ms(self) -> float | None: ...
    @property
    def status(self) -> str: ...
    @property
    def error_type(self) -> str | None: ...
    @property
    def error(self) -> str | None: ...


def plain(value: Any) -> Any:
    """``value`` as JSON-safe Python: numpy scalars and arrays unwrapped, NaN/inf as ``None``."""
    if isinstance(value, np.generic | np.ndarray):
        value = value.tolist()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, str | int | bool):
        return value
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    try:
        if value != value:  # pd.NA, pd.NaT
            return None
    except (TypeError, ValueError):
        return None
    return str(value)


def to_json(value: Mapping[str, Any] | None) -> str | None:
    """``value`` as compact JSON text (the fast path for plain values, :func:`plain` otherwise)."""
    if value is None:
        return None
    try:
        return json.dumps(value, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError):
        return json.dumps(plain(value), separators=(",", ":"))


def _kind(value: Any) -> str | None:
    """The flat kind of one value: ``None`` when missing, ``"other"`` when not flattenable."""
    if value is None:
        return None
    if isinstance(value, bool | np.bool_):
        return "bool"
    if isinstance(value, int | float | np.integer | np.floating):
        return None if isinstance(value, float | np.floating) and math.isnan(value) else "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list | tuple | np.ndarray):
        items = value.ravel().tolist() if isinstance(value, np.ndarray) else value
        if all(isinstance(v, int | float) and not isinstance(v, bool) for v in items):
            return "vector"
    return "other"


def _flat_value(value: Any, kind: str) -> Any:
    if kind == "number":
        number = float(value) if value is not None else None
        return None if number is None or not math.isfinite(number) else number
    if kind == "vector" and value is not None:
        items = value.ravel().tolist() if isinstance(value, np.ndarray) else list(value)
        return [float(v) if math.isfinite(v) else None for v in items]
    if kind == "bool" and value is not None:
        return bool(value)
    return value


def _flat_columns(prefix: str, rows: Sequence[Mapping[str, Any] | None]) -> list[tuple[str, pa.Array]]:
    keys: dict[str, None] = {}
    for row in rows:
        if row:
            keys.update(dict.fromkeys(row))
    columns: list[tuple[str, pa.Array]] = []
    for key in keys:
        if len(columns) >= MAX_FLAT_COLUMNS:
            break
        values = [row.get(key) if row else None for row in rows]
        kinds = {_kind(v) for v in values} - {None}
        if len(kinds) != 1 or "other" in kinds:
            continue
        kind = str(kinds.pop())
        flat = [_flat_value(v, kind) if _kind(v) is not None else None for v in values]
        columns.append((f"{prefix}.{key}", pa.array(flat, type=_FLAT_TYPES[kind])))
    return columns


def build_table(records: Sequence[_Record], schema_version: int) -> pa.Table:
    """The Arrow table of ``records`` (fixed columns, then flattened inputs and outputs)."""
    n = len(records)
    arrays = [
        pa.array([schema_version] * n, type=pa.int16()),
        pa.array([r.ts for r in records], type=pa.timestamp("us", tz="UTC")),
        pa.array([r.model for r in records], type=pa.string()),
        pa.array([r.version for r in records], type=pa.int64()),
        pa.array([r.request_id for r in records], type=pa.string()),
        pa.array([r.row for r in records], type=pa.int32()),
        pa.array([r.route for r in records], type=pa.string()),
        pa.array([r.source for r in records], type=pa.string()),
        pa.array([r.kind for r in records], type=pa.string()),
        pa.array([to_json(r.inputs) for r in records], type=pa.string()),
        pa.array([to_json(r.outputs) for r in records], type=pa.string()),
        pa.array([_finite(r.latency_ms) for r in records], type=pa.float64()),
        pa.array([r.status for r in records], type=pa.string()),
        pa.array([r.error_type for r in records], type=pa.string()),
        pa.array([r.error for r in records], type=pa.string()),
    ]
    names = list(BASE_SCHEMA.names)
    for name, array in (
        *_flat_columns("inputs", [r.inputs for r in records]),
        *_flat_columns("outputs", [r.outputs for r in records]),
    ):
        names.append(name)
        arrays.append(array)
    metadata = {b"modelport.prediction_log.schema_version": str(schema_version).encode()}
    return pa.Table.from_arrays(arrays, names=names).replace_schema_metadata(metadata)


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def conform(table: pa.Table, schema: pa.Schema) -> pa.Table | None:
    """``table`` reshaped to an open file's ``schema``, or ``None`` when the fixed columns differ.

    Flattened columns the file lacks are left out (the JSON columns still hold them); those the
    table lacks, or whose type differs, are written as nulls.
    """
    if table.schema.equals(schema, check_metadata=False):
        return table
    if table.schema.names[: len(BASE_SCHEMA)] != BASE_SCHEMA.names:
        return None
    arrays = []
    for schema_field in schema:
        if schema_field.name in table.column_names:
            column = table.column(schema_field.name)
            if column.type == schema_field.type:
                arrays.append(column)
                continue
        arrays.append(pa.nulls(table.num_rows, type=schema_field.type))
    return pa.Table.from_arrays(arrays, schema=schema)
