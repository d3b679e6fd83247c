"""MLflow's scoring-server shape, ``POST /invocations``, so MLflow clients switch servers unchanged.

Accepted bodies (exactly one key): ``dataframe_split`` (``{"columns": [...], "data": [[...]]}``),
``dataframe_records`` (a list of records), ``instances`` and ``inputs`` (as in V1). ``params`` is
accepted and ignored (modelport models take no inference parameters). Response:
``{"predictions": [...]}``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from modelport.core.errors import BadRequest, ValidationError
from modelport.core.types import Signature
from modelport.server.protocols.tensors import InferenceRequest, as_list
from modelport.server.protocols.v1 import check_columns, inputs_data, instances_data

FORMATS = ("dataframe_split", "dataframe_records", "instances", "inputs")
_HINT = 'Send one of: {"dataframe_split": {"columns": [...], "data": [[...]]}}, {"dataframe_records": [...]}, ' + (
    '{"instances": [...]}, {"inputs": {...}}.'
)


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


def encode_invocations(results: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """The MLflow response document."""
    return {"predictions": as_list(results["predict"])}
