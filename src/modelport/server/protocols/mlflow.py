"""MLflow's scoring-server shape, ``POST /invocations``, so MLflow clients switch servers unchanged.

Accepted JSON bodies (exactly one key): ``dataframe_split`` (``{"columns": [...], "data": [[...]]}``),
``dataframe_records`` (a list of records), ``instances`` and ``inputs`` (as in V1). ``params`` is
accepted and ignored (modelport models take no inference parameters). A ``text/csv`` body (UTF-8,
a header row naming the columns, then one row per prediction) is read with pyarrow into the same
columns a ``dataframe_split`` with ``columns`` gives, so the signature coerces it the same way:
each column is read as its signature type (text, category and datetime columns as text, so
``"007"`` stays ``"007"``), with pandas' ``read_csv`` missing-value markers (empty, ``NA``,
``NaN``, ``null``...); a value that does not read as its type is handed over as text, so the
coercer names it, its column and its row exactly as for JSON. Response: ``{"predictions": [...]}``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import numpy as np
import pyarrow as pa
from pyarrow import csv as pa_csv

from modelport.core.errors import BadRequest, ValidationError
from modelport.core.types import Signature
from modelport.server.protocols.tensors import InferenceRequest, as_list
from modelport.server.protocols.v1 import check_columns, inputs_data, instances_data, signature_tensor_names

FORMATS = ("dataframe_split", "dataframe_records", "instances", "inputs")
_HINT = 'Send one of: {"dataframe_split": {"columns": [...], "data": [[...]]}}, {"dataframe_records": [...]}, ' + (
    '{"instances": [...]}, {"inputs": {...}}, or a CSV (text/csv) whose first row names the columns.'
)
_CSV_HINT = "Send UTF-8 CSV (text/csv) whose first row names the columns, then one row of values per prediction."
# pandas.read_csv's default missing-value markers: MLflow reads CSV bodies with pandas.
_CSV_NULLS = [
    *("", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN", "<NA>"),
    *("N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null"),
]
_JSON_START = re.compile(rb"\s*[\[{]")
_ARROW_TYPES: dict[str, pa.DataType] = {"float": pa.float64(), "int": pa.int64(), "bool": pa.bool_()}
_ARROW_KINDS: dict[str, pa.DataType] = {"f": pa.float64(), "i": pa.int64(), "u": pa.int64(), "b": pa.bool_()}


def _split_data(split: Any, signature: Signature) -> Any:
    if not isinstance(split, dict) or "data" not in split:
        raise BadRequest("'dataframe_split' must be an object with 'data' (and usually 'columns').", hint=_HINT)
    rows, columns = split["data"], split.get("columns")
    if not isinstance(rows, list) or not rows:
        raise BadRequest("'dataframe_split.data' must be a non-empty list of rows.", hint=_HINT)
    if columns is None:
        return rows
    if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns):
        raise BadRequest("'dataframe_split.columns' must be a list of column names.", hint=_HINT)
    check_columns(columns, signature)
    width = len(columns)
    for i, row in enumerate(rows):
        if not isinstance(row, list) or len(row) != width:
            raise ValidationError(
                f"dataframe_split row {i} has {len(row) if isinstance(row, list) else 1} values; "
                f"'columns' names {width}.",
                hint="Give every row one value per column, in the order of 'columns'.",
            )
    return {name: [row[j] for row in rows] for j, name in enumerate(columns)}


def parse_invocations(doc: Any, signature: Signature) -> InferenceRequest:
    """Parse a parsed MLflow ``/invocations`` document."""
    if not isinstance(doc, dict):
        raise BadRequest(f"The request must be a JSON object, got {type(doc).__name__}.", hint=_HINT)
    present = [key for key in FORMATS if key in doc]
    if len(present) != 1:
        found = ", ".join(present) or "none of them"
        raise BadRequest(f"Send exactly one of {', '.join(FORMATS)} (found {found}).", hint=_HINT)
    key = present[0]
    value = doc[key]
    if key == "dataframe_split":
        data = _split_data(value, signature)
    elif key == "dataframe_records":
        if not isinstance(value, list) or not value or not all(isinstance(r, dict) for r in value):
            raise BadRequest("'dataframe_records' must be a non-empty list of records.", hint=_HINT)
        data = instances_data(value, signature)
    elif key == "instances":
        data = instances_data(value, signature)
    else:
        data = inputs_data(value, signature)
    return InferenceRequest(data, ("predict",))


def parse_csv(data: bytes, signature: Signature) -> InferenceRequest:
    """Parse an MLflow ``text/csv`` body into the columns ``dataframe_split`` would give.

    Raises:
        BadRequest: An empty body, not UTF-8, malformed CSV (ragged rows, unbalanced quotes), no
            header row, duplicate or unnamed header columns, or no data rows.
        ValidationError: A header column the model does not know.
    """
    if not data or data.isspace():
        raise BadRequest("The request body is empty.", hint=_CSV_HINT)
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise BadRequest(
            f"The CSV body is not valid UTF-8 (byte 0x{data[exc.start]:02x} on line {line}).", hint=_CSV_HINT
        ) from None
    if _JSON_START.match(data):
        raise BadRequest(
            "The body is sent as text/csv but looks like JSON.",
            hint="Send JSON bodies with Content-Type: application/json.",
        )
    if b"\n" not in data and b"\r" not in data:
        data += b"\n"  # one line: Arrow reads it as a header only once it ends
    table = _read_csv(data, signature)
    names = table.column_names
    _check_header(names, signature)
    if table.num_rows == 0:
        raise BadRequest("The CSV body has a header row but no data rows.", hint=_CSV_HINT)
    columns = {name: _numpy(column) for name, column in zip(names, table.columns, strict=True)}
    return InferenceRequest(columns, ("predict",))


def _numpy(column: pa.ChunkedArray) -> np.ndarray:
    """One column as a 1-D array (missing values as NaN in numbers, ``None`` in text and bools)."""
    array = column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()
    values: np.ndarray = array.to_numpy(zero_copy_only=False)
    return values


def _csv_types(signature: Signature) -> dict[str, pa.DataType]:
    """The Arrow type each signature column is read as: numbers and bools typed, everything else text."""
    if signature.kind == "tabular":
        return {c.name: _ARROW_TYPES.get(c.type, pa.string()) for c in signature.columns}
    return {t.name: _ARROW_KINDS.get(_dtype_kind(t.dtype), pa.string()) for t in signature.tensors}


def _dtype_kind(dtype: str) -> str:
    try:
        return np.dtype(dtype).kind
    except TypeError:
        return "O"


def _read_csv(data: bytes, signature: Signature) -> pa.Table:
    """The CSV as a table; a column whose values do not all read as its type is read again as text."""
    types = _csv_types(signature)
    parse = pa_csv.ParseOptions(newlines_in_values=b'"' in data)
    try:
        return _arrow_read(data, types, parse, threads=True)
    except pa.ArrowInvalid:
        pass  # a value that is not of its column's type, or malformed CSV: the text read tells which
    text = dict.fromkeys(types, pa.string())
    try:
        return _arrow_read(data, text, parse, threads=False)  # serial: parse errors name the row
    except pa.ArrowInvalid as exc:
        raise BadRequest(f"Malformed CSV body: {exc}.", hint=_CSV_HINT) from None


def _arrow_read(data: bytes, types: dict[str, pa.DataType], parse: pa_csv.ParseOptions, *, threads: bool) -> pa.Table:
    convert = pa_csv.ConvertOptions(
        column_types=types, null_values=_CSV_NULLS, strings_can_be_null=True, check_utf8=False
    )
    read = pa_csv.ReadOptions(use_threads=threads)
    return pa_csv.read_csv(pa.py_buffer(data), read_options=read, parse_options=parse, convert_options=convert)


def _check_header(names: list[str], signature: Signature) -> None:
    known = signature.column_names if signature.kind == "tabular" else signature_tensor_names(signature)
    if known and not set(names) & set(known):
        first = ", ".join(repr(n) for n in names[:5]) + (" ..." if len(names) > 5 else "")
        raise BadRequest(
            f"The CSV's first row ({first}) names none of the model's columns: a header row is required.",
            hint=f"Start the CSV with a header row naming the columns: {','.join(known)}.",
        )
    if "" in names:
        raise BadRequest(
            f"CSV header column {names.index('') + 1} has no name.",
            hint="Name every column; a leading unnamed column is usually a DataFrame index "
            "(write the CSV with to_csv(index=False)).",
        )
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise BadRequest(f"CSV header names column {name!r} twice.", hint="Name each column once.")
        seen.add(name)
    check_columns(names, signature)


def encode_invocations(results: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """The MLflow response document."""
    return {"predictions": as_list(results["predict"])}
