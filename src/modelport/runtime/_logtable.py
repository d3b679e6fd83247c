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
from collections.abc import Iterator, Mapping, Sequence
from datetime import date, datetime
from operator import itemgetter
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


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic | np.ndarray):
        return value.tolist()
    raise TypeError(type(value).__name__)


_ENCODER = json.JSONEncoder(allow_nan=False, separators=(",", ":"), default=_json_default)
_LENIENT_ENCODER = json.JSONEncoder(separators=(",", ":"))


def to_json(value: Mapping[str, Any] | None) -> str | None:
    """``value`` as compact JSON text (NaN and infinities as ``null``)."""
    if value is None:
        return None
    try:
        return _ENCODER.encode(value)
    except (TypeError, ValueError):  # NaN somewhere, or a value JSON does not know
        return _LENIENT_ENCODER.encode(plain(value))


_NUMBER_TYPES = (int, float, np.integer, np.floating)
_BOOL_TYPES = (bool, np.bool_)
_NONE = type(None)


def _flat_kind(types: set[type]) -> str | None:
    """The flat kind shared by values of these ``types`` (``None`` when they mix or cannot be flattened)."""
    types = types - {_NONE}
    if not types:
        return None
    if all(issubclass(t, _BOOL_TYPES) for t in types):
        return "bool"
    if all(issubclass(t, _NUMBER_TYPES) and not issubclass(t, _BOOL_TYPES) for t in types):
        return "number"
    if all(issubclass(t, str) for t in types):
        return "string"
    if all(issubclass(t, list | tuple | np.ndarray) for t in types):
        return "vector"
    return None


def _transpose(rows: Sequence[Mapping[str, Any] | None], keys: list[str]) -> Iterator[tuple[str, Sequence[Any]]]:
    """``(key, values of every row)`` for each key; one C-level pass when every row has every key."""
    if not keys:
        return
    getter = itemgetter(*keys)
    try:
        picked = list(map(getter, rows))  # type: ignore[arg-type]
    except (KeyError, TypeError):
        for key in keys:
            yield key, [row.get(key) if row else None for row in rows]
        return
    if len(keys) == 1:
        yield keys[0], picked
        return
    yield from zip(keys, zip(*picked, strict=True), strict=True)


def _flat_columns(prefix: str, rows: Sequence[Mapping[str, Any] | None]) -> list[tuple[str, pa.Array]]:
    keys: dict[str, None] = {}
    for row in rows:
        if row:
            keys.update(dict.fromkeys(row))
    columns: list[tuple[str, pa.Array]] = []
    for key, values in _transpose(rows, list(keys)[: MAX_FLAT_COLUMNS * 2]):
        if len(columns) >= MAX_FLAT_COLUMNS:
            break
        kind = _flat_kind(set(map(type, values)))
        if kind is None:
            continue
        try:
            array = pa.array(values, type=_FLAT_TYPES[kind], from_pandas=True)
        except (pa.ArrowException, TypeError, ValueError):
            continue  # e.g. a vector holding text: the JSON column keeps it
        columns.append((f"{prefix}.{key}", array))
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
