"""Signature inference: what a model takes, read from ``sample_input``, and what it returns.

A DataFrame sample gives a *tabular* signature: one :class:`ColumnSpec` per column with a logical
type (``float``, ``int``, ``bool``, ``string``, ``category``, ``datetime``), the exact dtype, the
nullability seen in the sample and, for string and categorical columns, the observed categories.
pandas 3 stores text as the ``str`` dtype by default; pandas 2 as ``object``: both read as
``string``. An ndarray (or a dict of ndarrays) gives a *tensor* signature with the dtype and the
shape, the first (batch) dimension free (``-1``). Outputs come from predicting on the sample:
``predict`` (labels with their classes, regression values, or a tensor) and ``predict_proba``
(probabilities, with the class names) when the model has it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from modelport.bundle.flavors.base import ModelAdapter, ModelInput
from modelport.core.errors import ModelportError, Unsupported, ValidationError
from modelport.core.types import ColumnSpec, ColumnType, OutputKind, OutputSpec, Signature, TensorSpec

MAX_CATEGORIES = 1000
"""String columns with more distinct values than this record no category list (free text, ids)."""

DEFAULT_TENSOR_NAME = "input"
"""Name of the single tensor of a model that takes one ndarray."""

_INFERRED_TYPES: dict[str, ColumnType] = {
    "string": "string",
    "empty": "string",
    "integer": "int",
    "floating": "float",
    "mixed-integer-float": "float",
    "decimal": "float",
    "boolean": "bool",
    "datetime": "datetime",
    "datetime64": "datetime",
    "date": "datetime",
}

_OBJECT_DTYPES: dict[tuple[ColumnType, bool], str] = {
    ("int", False): "int64",
    ("int", True): "Int64",
    ("float", False): "float64",
    ("float", True): "float64",
    ("bool", False): "bool",
    ("bool", True): "boolean",
    ("datetime", False): "datetime64[ns]",
    ("datetime", True): "datetime64[ns]",
}
"""The dtype an ``object`` column of non-string values is coerced to, by (type, nullable)."""


def infer_input_signature(sample: ModelInput) -> Signature:
    """The input signature of ``sample`` (outputs left empty; see :func:`infer_outputs`).

    Args:
        sample: A DataFrame (tabular), an ndarray, or a dict of named ndarrays (tensors).

    Raises:
        ValidationError: The sample is empty, or a column or array cannot be typed.

    Example:
        >>> sig = infer_input_signature(pd.DataFrame({"age": [31, 45], "city": ["Oslo", "Lima"]}))
        >>> [(c.name, c.type) for c in sig.columns]
        [('age', 'int'), ('city', 'string')]
    """
    if isinstance(sample, pd.DataFrame):
        return Signature(kind="tabular", columns=_columns(sample))
    if isinstance(sample, np.ndarray):
        return Signature(kind="tensor", tensors=(_tensor(DEFAULT_TENSOR_NAME, sample),))
    if isinstance(sample, dict) and sample and all(isinstance(v, np.ndarray) for v in sample.values()):
        return Signature(kind="tensor", tensors=tuple(_tensor(str(k), v) for k, v in sample.items()))
    raise ValidationError(
        f"sample_input of type {type(sample).__name__} cannot describe a model's input.",
        hint="Pass a few rows of training data as a pandas DataFrame (tabular models), a numpy array, "
        "or a dict of named numpy arrays (tensor models).",
    )


def infer_outputs(adapter: ModelAdapter, model_input: ModelInput) -> tuple[OutputSpec, ...]:
    """Output specs from predicting on ``model_input``: ``predict`` always, ``predict_proba`` if any.

    Raises:
        ValidationError: The model fails on its own sample input.
    """
    classes = _plain_tuple(adapter.classes) if adapter.classes is not None else None
    predictions = _call(adapter.predict, model_input, "predict")
    kind = _predict_kind(predictions, classes, adapter)
    outputs = [
        OutputSpec(
            name="predict",
            kind=kind,
            dtype=_dtype_name(predictions.dtype),
            shape=(-1, *predictions.shape[1:]),
            classes=classes if kind == "label" else None,
        )
    ]
    if adapter.has_proba:
        proba = _call(adapter.predict_proba, model_input, "predict_proba")
        outputs.append(
            OutputSpec(
                name="predict_proba",
                kind="probabilities",
                dtype=_dtype_name(proba.dtype),
                shape=(-1, *proba.shape[1:]),
                classes=classes,
            )
        )
    return tuple(outputs)


def plain_value(value: Any) -> str | int | float | bool:
    """A numpy scalar (or any label) as a plain JSON-able Python value; other objects as ``str``."""
    item = value.item() if isinstance(value, np.generic) else value
    if isinstance(item, bool | int | float | str):
        return item
    return str(item)


def _plain_tuple(values: Any) -> tuple[str | int | float | bool, ...]:
    return tuple(plain_value(v) for v in values)


def _call(method: Any, model_input: ModelInput, what: str) -> np.ndarray:
    try:
        result = np.asarray(method(model_input))
    except ModelportError:
        raise
    except Exception as exc:
        raise ValidationError(
            f"The model failed to {what} on sample_input: {type(exc).__name__}: {exc}",
            hint="Pass a sample_input the model accepts: the same columns (or array shape) and types it was "
            "trained on.",
        ) from exc
    if result.ndim == 0:
        raise ValidationError(
            f"The model's {what} returned a scalar, not one value per row.",
            hint="Make predict return one prediction per input row.",
        )
    return result


def _predict_kind(predictions: np.ndarray, classes: tuple[Any, ...] | None, adapter: ModelAdapter) -> OutputKind:
    if classes is not None:
        return "label"
    if predictions.dtype.kind in "fc":
        if predictions.ndim == 1 or (predictions.ndim == 2 and adapter.input_format == "frame"):
            return "regression"
        return "tensor"
    return "label" if predictions.ndim == 1 else "tensor"


def _dtype_name(dtype: np.dtype[Any]) -> str:
    return "str" if dtype.kind in "UO" else str(dtype)


def _tensor(name: str, array: np.ndarray) -> TensorSpec:
    if array.ndim == 0 or array.shape[0] == 0:
        raise ValidationError(
            f"sample_input array {name!r} has shape {array.shape}; it needs at least one row.",
            hint="Pass a few rows of real input, batch dimension first.",
        )
    if array.dtype.kind not in "biufUO" or (array.dtype.kind == "O" and not _all_strings(array)):
        raise ValidationError(
            f"sample_input array {name!r} has dtype {array.dtype}, which modelport cannot type.",
            hint="Use a numeric, bool or string array.",
        )
    return TensorSpec(name=name, dtype=_dtype_name(array.dtype), shape=(-1, *array.shape[1:]))


def _all_strings(array: np.ndarray) -> bool:
    return bool(pd.api.types.infer_dtype(array.ravel(), skipna=True) in {"string", "empty"})


def _columns(frame: pd.DataFrame) -> tuple[ColumnSpec, ...]:
    if len(frame) == 0 or frame.shape[1] == 0:
        raise ValidationError(
            f"sample_input DataFrame has shape {frame.shape}; it needs at least one row and one column.",
            hint="Pass a few rows of training data as sample_input.",
        )
    names = list(frame.columns)
    bad = [n for n in names if not isinstance(n, str)]
    if bad:
        raise Unsupported(
            f"sample_input column name {bad[0]!r} is not a string.",
            hint="Name every column with a string (frame.columns = frame.columns.astype(str)) and train on that.",
        )
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise ValidationError(
            f"sample_input has duplicate column {duplicated[0]!r}.",
            hint="Give every column a unique name.",
        )
    return tuple(_column(name, frame[name]) for name in names)


def _column(name: str, series: pd.Series[Any]) -> ColumnSpec:
    dtype = series.dtype
    nullable = bool(series.isna().any())
    column_type = _column_type(name, series)
    categories: tuple[str, ...] | None = None
    if isinstance(dtype, pd.CategoricalDtype):
        categories = tuple(str(c) for c in dtype.categories)
    elif column_type == "string":
        observed = pd.unique(series.dropna().astype(str))
        categories = tuple(sorted(str(v) for v in observed)) if len(observed) <= MAX_CATEGORIES else None
    dtype_name = str(dtype)
    if dtype == np.dtype(object) and column_type != "string":
        dtype_name = _OBJECT_DTYPES[column_type, nullable]
    return ColumnSpec(name=name, type=column_type, dtype=dtype_name, nullable=nullable, categories=categories)


def _column_type(name: str, series: pd.Series[Any]) -> ColumnType:
    dtype = series.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        return "category"
    if pd.api.types.is_bool_dtype(dtype):
        return "bool"
    if pd.api.types.is_integer_dtype(dtype):
        return "int"
    if pd.api.types.is_float_dtype(dtype):
        return "float"
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return "datetime"
    if pd.api.types.is_string_dtype(dtype) or dtype == np.dtype(object):
        inferred = pd.api.types.infer_dtype(series, skipna=True)
        if inferred in _INFERRED_TYPES:
            return _INFERRED_TYPES[inferred]
        raise ValidationError(
            f"sample_input column {name!r} holds values of mixed or unsupported type ({inferred}).",
            hint=f"Cast column {name!r} to one type (e.g. frame[{name!r}].astype(str)) before training and saving.",
        )
    raise ValidationError(
        f"sample_input column {name!r} has dtype {dtype}, which modelport cannot type.",
        hint="Use float, int, bool, string, category or datetime columns.",
    )
