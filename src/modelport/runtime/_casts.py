"""Casting one column, or one tensor, to its signature dtype: the vectorised core of input coercion.

Each cast takes the raw values of one column (an ndarray, list or tuple) and returns a 1-D numpy
array of the column's dtype, or raises :class:`~modelport.core.errors.ValidationError` naming the
column, the first bad row and what was expected. The fast path is one numpy call per column; the
per-element loop only runs after a vectorised check failed, to find the first bad value.
:mod:`modelport.runtime.coercion` decides which column gets which cast and assembles the result.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NoReturn

import numpy as np
import pandas as pd

from modelport.core.errors import ValidationError
from modelport.core.types import ColumnSpec, ColumnType, TensorSpec

CAST_HINT = "Cast the column or re-save the bundle with a new signature."
_TRUE_TEXT = np.array(["true", "1", "1.0"])
_FALSE_TEXT = np.array(["false", "0", "0.0"])
_TEXT_INFERRED = frozenset({"string", "empty", "integer", "floating", "mixed-integer-float", "boolean", "decimal"})
_DATE_INFERRED = frozenset({"string", "empty", "datetime", "datetime64", "date"})
NUMERIC_TYPES: frozenset[ColumnType] = frozenset({"float", "int"})


@dataclass(frozen=True)
class Column:
    """One signature column, with the dtypes it is coerced to resolved once (see :func:`resolve_column`)."""

    name: str
    type: ColumnType
    dtype: np.dtype[Any]
    frame_dtype: Any
    nullable: bool
    tz: str | None


def resolve_column(spec: ColumnSpec) -> Column:
    try:
        pandas_dtype: Any = pd.api.types.pandas_dtype(spec.dtype)
    except TypeError:
        pandas_dtype = None
    defaults: dict[ColumnType, str] = {
        "float": "float64",
        "int": "int64",
        "bool": "bool",
        "string": "object",
        "category": "object",
        "datetime": "datetime64[ns]",
    }
    dtype = np.dtype(defaults[spec.type])
    if isinstance(pandas_dtype, np.dtype) and spec.type in NUMERIC_TYPES and pandas_dtype.kind in "iuf":
        dtype = pandas_dtype
    tz: str | None = None
    if isinstance(pandas_dtype, pd.DatetimeTZDtype):
        dtype, tz = np.dtype(f"datetime64[{pandas_dtype.unit}]"), str(pandas_dtype.tz)
    elif isinstance(pandas_dtype, np.dtype) and pandas_dtype.kind == "M":
        dtype = pandas_dtype
    frame_dtype: Any = None
    if spec.type == "category":
        frame_dtype = pd.CategoricalDtype(list(spec.categories)) if spec.categories else "category"
    elif pandas_dtype is not None and not isinstance(pandas_dtype, np.dtype):
        frame_dtype = pandas_dtype  # Int64, boolean, str, tz-aware datetimes...
    elif spec.type == "string":
        frame_dtype = np.dtype(object)
    return Column(spec.name, spec.type, dtype, frame_dtype, spec.nullable, tz)


def describe_value(value: Any) -> str:
    """``type (repr)`` of one offending value, shortened: ``str ('forty')``."""
    plain = value.item() if isinstance(value, np.generic) else value
    text = repr(plain)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{type(plain).__name__} ({text})"


def _bad_value(col: Column, row: int, value: Any, expected: str | None = None) -> NoReturn:
    raise ValidationError(
        f"column {col.name!r}: expected {expected or col.type}, got {describe_value(value)} at row {row}.",
        hint=CAST_HINT,
    )


def _missing_value(col: Column, row: int, value: Any) -> NoReturn:
    raise ValidationError(
        f"column {col.name!r}: expected {col.type}, got a missing value ({value!r}) at row {row}; "
        "the signature does not allow missing values in this column.",
        hint=f"Fill in the missing values, or re-save the bundle with a sample_input that has missing values "
        f"in {col.name!r}.",
    )


def as_object(values: Any) -> np.ndarray:
    """A 1-D object array of ``values``, never splitting nested lists into a second dimension."""
    if isinstance(values, np.ndarray) and values.ndim == 1:
        return values.astype(object, copy=False)
    items = list(values.ravel()) if isinstance(values, np.ndarray) else list(values)
    out = np.empty(len(items), dtype=object)
    try:
        out[:] = items
    except ValueError:
        for i, item in enumerate(items):
            out[i] = item
    return out


def _find_bad(col: Column, obj: np.ndarray, accept: Any, expected: str | None = None) -> NoReturn:
    """Raise for the first non-missing element of ``obj`` that ``accept`` refuses (the slow path)."""
    missing = pd.isna(obj)
    for row, value in enumerate(obj):
        if missing[row]:
            continue
        try:
            ok = accept(value)
        except (TypeError, ValueError, OverflowError):
            ok = False
        if not ok:
            _bad_value(col, row, value, expected)
    raise ValidationError(f"column {col.name!r}: values cannot be read as {expected or col.type}.", hint=CAST_HINT)


def _float_like(value: Any) -> bool:
    if isinstance(value, str | bytes | int | float | np.number | np.bool_):
        float(value)
        return True
    return False


def _to_float64(values: Any, col: Column) -> np.ndarray:
    """``values`` as float64 with NaN for missing values (not yet checked against nullability)."""
    if isinstance(values, np.ndarray) and values.dtype.kind in "biuf":
        return values.astype(np.float64)
    if not (isinstance(values, np.ndarray) and values.dtype.kind in "Mm"):
        try:
            arr = np.asarray(values, dtype=np.float64)
            if arr.ndim == 1:
                return arr
        except (TypeError, ValueError):
            pass
    obj = as_object(values)
    missing = pd.isna(obj)
    out = np.full(len(obj), np.nan)
    try:
        if not all(map(_float_like, obj[~missing])):
            raise TypeError
        out[~missing] = np.asarray(obj[~missing], dtype=np.float64)
    except (TypeError, ValueError, OverflowError):
        _find_bad(col, obj, _float_like)
    return out


def _check_finite(arr: np.ndarray, col: Column) -> bool:
    """Raise for infinities, and for NaN unless nullable; return whether NaN is present."""
    finite = np.isfinite(arr)
    if finite.all():
        return False
    nan = np.isnan(arr)
    bad = ~finite & ~nan if col.nullable else ~finite
    if bad.any():
        row = int(np.argmax(bad))
        if nan[row]:
            _missing_value(col, row, float(arr[row]))
        raise ValidationError(
            f"column {col.name!r}: expected a finite {col.type}, got {float(arr[row])} at row {row}.",
            hint="Replace infinite values (e.g. clip them or mark them missing) before predicting.",
        )
    return True


def _coerce_float(values: Any, col: Column) -> np.ndarray:
    arr = _to_float64(values, col)
    _check_finite(arr, col)
    return arr.astype(col.dtype, copy=False)


def _coerce_int(values: Any, col: Column) -> np.ndarray:
    if isinstance(values, np.ndarray) and values.dtype.kind in "iu" and values.ndim == 1:
        info = np.iinfo(col.dtype)
        if values.size and (values.min() < info.min or values.max() > info.max):
            row = int(np.argmax((values < info.min) | (values > info.max)))
            _bad_value(col, row, values[row], f"int within {col.dtype}")
        return values.astype(col.dtype, copy=False)
    arr = _to_float64(values, col)
    has_nan = _check_finite(arr, col)
    fractional = np.isfinite(arr) & (arr != np.trunc(arr))
    if fractional.any():
        row = int(np.argmax(fractional))
        _bad_value(col, row, as_object(values)[row])
    if has_nan:
        return arr
    if arr.size and np.abs(arr).max() >= 2.0**53 and not isinstance(values, np.ndarray):
        return np.asarray(values, dtype=col.dtype)  # exact big ints, not via float
    return arr.astype(col.dtype)


def _bool_like(value: Any) -> bool:
    return str(value).lower() in {"true", "false", "1", "0", "1.0", "0.0"}


def _coerce_bool(values: Any, col: Column) -> np.ndarray:
    if isinstance(values, np.ndarray) and values.dtype.kind == "b":
        return values.ravel()
    if isinstance(values, np.ndarray) and values.dtype.kind in "iuf":
        arr = values.astype(np.float64).ravel()
    else:
        obj = as_object(values)
        missing = pd.isna(obj)
        text = np.char.lower(obj[~missing].astype(str))
        is_true, is_false = np.isin(text, _TRUE_TEXT), np.isin(text, _FALSE_TEXT)
        if not (is_true | is_false).all():
            _find_bad(col, obj, _bool_like)
        arr = np.full(len(obj), np.nan)
        arr[~missing] = is_true
    has_nan = _check_finite(arr, col)
    not_binary = ~np.isnan(arr) & (arr != 0) & (arr != 1)
    if not_binary.any():
        row = int(np.argmax(not_binary))
        _bad_value(col, row, as_object(values)[row])
    return arr if has_nan else arr.astype(bool)


def _text_like(value: Any) -> bool:
    return isinstance(value, str | bytes | int | float | bool | np.number | np.bool_)


def _coerce_text(values: Any, col: Column) -> np.ndarray:
    if isinstance(values, np.ndarray) and values.dtype.kind == "U":
        return values.ravel().astype(object)
    obj = as_object(values)
    missing = pd.isna(obj)
    if missing.any() and not col.nullable:
        row = int(np.argmax(missing))
        _missing_value(col, row, obj[row])
    inferred = pd.api.types.infer_dtype(obj, skipna=True)
    if inferred in ("string", "empty") and not missing.any():
        return obj
    if inferred not in _TEXT_INFERRED and inferred != "bytes" and not all(map(_text_like, obj[~missing])):
        _find_bad(col, obj, _text_like, "string")
    out = obj.copy() if inferred != "string" else obj
    present = obj[~missing]
    if inferred == "bytes":
        out[~missing] = [v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in present]
    elif inferred != "string":
        out[~missing] = present.astype(str).astype(object)
    out[missing] = np.nan
    return out


def _date_like(value: Any) -> bool:
    return _not_number(value) and bool(pd.notna(pd.to_datetime(value, utc=True)))


def _not_number(value: Any) -> bool:
    return not isinstance(value, bool | int | float | np.number | np.bool_)


def _coerce_datetime(values: Any, col: Column) -> np.ndarray:
    if isinstance(values, np.ndarray) and values.dtype.kind == "M":
        out = values.ravel().astype(col.dtype)
    else:
        obj = as_object(values)
        missing = pd.isna(obj)
        if pd.api.types.infer_dtype(obj, skipna=True) not in _DATE_INFERRED and not all(
            map(_not_number, obj[~missing])
        ):
            _find_bad(col, obj, _not_number)  # numbers are refused: their unit would be a guess
        try:
            parsed = pd.to_datetime(obj, errors="coerce", format="ISO8601", utc=True)
            if (parsed.isna() & ~missing).any():
                parsed = pd.to_datetime(obj, errors="coerce", format="mixed", utc=True)
        except (TypeError, ValueError, OverflowError):
            _find_bad(col, obj, _date_like)
        unparsed = parsed.isna() & ~missing
        if unparsed.any():
            row = int(np.argmax(unparsed))
            _bad_value(col, row, obj[row])
        out = parsed.tz_localize(None).to_numpy().astype(col.dtype)
    nat = np.isnat(out)
    if nat.any() and not col.nullable:
        _missing_value(col, int(np.argmax(nat)), None)
    return out


COLUMN_CASTS = {
    "float": _coerce_float,
    "int": _coerce_int,
    "bool": _coerce_bool,
    "string": _coerce_text,
    "category": _coerce_text,
    "datetime": _coerce_datetime,
}


def _tensor_dtype(spec: TensorSpec) -> np.dtype[Any]:
    return np.dtype(object) if spec.dtype in ("str", "object", "string") else np.dtype(spec.dtype)


def coerce_tensor(value: Any, spec: TensorSpec) -> np.ndarray:
    dtype = _tensor_dtype(spec)
    try:
        arr = np.asarray(value)
    except ValueError as exc:
        raise ValidationError(
            f"tensor {spec.name!r}: ragged nested lists cannot form an array of shape {spec.shape}.",
            hint="Send a rectangular array (every row the same length).",
        ) from exc
    if arr.ndim == len(spec.shape) - 1 and spec.shape and spec.shape[0] == -1:
        arr = arr[np.newaxis, ...]
    expected = tuple(spec.shape)
    if arr.ndim != len(expected) or any(d not in (-1, a) for d, a in zip(expected, arr.shape, strict=True)):
        raise ValidationError(
            f"tensor {spec.name!r}: expected shape {_shape_text(expected)}, got {arr.shape}.",
            hint="Reshape the input; -1 marks a free dimension (usually the batch).",
        )
    return _cast_tensor(arr, spec, dtype)


def _shape_text(shape: tuple[int, ...]) -> str:
    return "(" + ", ".join("N" if d == -1 else str(d) for d in shape) + ")"


def _cast_tensor(arr: np.ndarray, spec: TensorSpec, dtype: np.dtype[Any]) -> np.ndarray:
    if dtype.kind == "O":
        if arr.dtype.kind in "UO":
            return arr.astype(object)
        return _tensor_error(spec, arr, np.zeros(arr.shape, dtype=bool), "string")
    arr = _numeric_tensor(arr, spec, dtype)
    if dtype.kind == "b" and arr.dtype.kind != "b" and not np.isin(arr, (0, 1)).all():
        return _tensor_error(spec, arr, np.isin(arr, (0, 1)), "bool (0 or 1)")
    if dtype.kind in "iu" and arr.dtype.kind in "iuf" and arr.size:
        info = np.iinfo(dtype)
        in_range = (arr >= info.min) & (arr <= info.max)
        if not in_range.all():
            return _tensor_error(spec, arr, in_range, f"{dtype} within range")
    return arr.astype(dtype, copy=False)


def _numeric_tensor(arr: np.ndarray, spec: TensorSpec, dtype: np.dtype[Any]) -> np.ndarray:
    """``arr`` as a numeric array, with infinities (and NaN or fractions for int targets) refused."""
    if arr.dtype.kind not in "biuf":
        try:
            arr = arr.astype(np.float64)
        except (TypeError, ValueError):
            ok = np.vectorize(_float_like_safe, otypes=[bool])(arr)
            return _tensor_error(spec, arr, ok, str(dtype))
    if arr.dtype.kind == "f":
        finite = np.isfinite(arr)
        allowed = finite | np.isnan(arr) if dtype.kind == "f" else finite
        if not allowed.all():
            return _tensor_error(spec, arr, allowed, f"finite {dtype}")
        if dtype.kind in "iub" and (arr != np.trunc(arr)).any():
            return _tensor_error(spec, arr, arr == np.trunc(arr), str(dtype))
    return arr


def _float_like_safe(value: Any) -> bool:
    try:
        return _float_like(value)
    except (TypeError, ValueError, OverflowError):
        return False


def _tensor_error(spec: TensorSpec, arr: np.ndarray, ok: np.ndarray, expected: str) -> NoReturn:
    index = tuple(int(i) for i in np.unravel_index(int(np.argmax(~ok)), arr.shape))
    value = arr[index] if arr.ndim else arr
    raise ValidationError(
        f"tensor {spec.name!r}: expected {expected}, got {describe_value(value)} at index {index}.",
        hint="Cast the array to the model's dtype or re-save the bundle with a new signature.",
    )
