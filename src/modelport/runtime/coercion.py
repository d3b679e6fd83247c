"""Input coercion: whatever the caller hands over becomes exactly the input the model expects.

A :class:`Coercer` is built once per model from its :class:`~modelport.core.types.Signature` and the
adapter's ``input_format``. Tabular signatures accept a DataFrame, a list of records (dicts), a dict
of columns (lists or arrays; a dict of scalars is one record), a pandas Series (one record), a
pyarrow Table, or a 2-D ndarray / list of rows with the columns in signature order (a 1-D array of
one row's values is accepted too). Tensor signatures accept an ndarray (or nested lists) for a
single tensor, or a dict of arrays by tensor name. Every column is cast to its signature type with
vectorised numpy code: ints from floats only when integral, bools from ``0``/``1``/``"true"``/
``"false"``, text for string and categorical columns (numbers are turned into their ``str``),
datetimes parsed (ISO 8601 first). Missing values (``None``, NaN) are accepted only in nullable
columns, infinities never (nor in float tensors). Anything else raises
:class:`~modelport.core.errors.ValidationError` naming the column, the first bad row (0-based
position) and what was expected; extra columns are ignored with an :class:`ExtraColumnsWarning`.

The result follows ``input_format``: ``"frame"`` → a DataFrame in signature order; ``"array"`` → a
2-D float array in signature order (datetimes as nanoseconds since the epoch; an object array when a
text column is present) or the single tensor; ``"arrays"`` → a dict of arrays, ``[N, 1]`` per column
for tabular models. Nullable int/bool columns that hold a missing value come out as float64 with
NaN (as a pandas nullable dtype in frames when the signature recorded one).
"""

from __future__ import annotations

import math
import sys
import warnings
from collections.abc import Mapping, Sequence
from operator import itemgetter
from typing import Any, NoReturn

import numpy as np
import pandas as pd

from modelport.bundle.flavors.base import InputFormat, ModelInput
from modelport.core.errors import Unsupported, ValidationError
from modelport.core.types import Signature
from modelport.runtime._casts import (
    CAST_HINT,
    COLUMN_CASTS,
    NUMERIC_TYPES,
    Column,
    as_object,
    coerce_tensor,
    resolve_column,
)

__all__ = ["CAST_HINT", "Coercer", "ExtraColumnsWarning", "coerce_input"]


class ExtraColumnsWarning(UserWarning):
    """The input had columns the model's signature does not name; they were ignored."""


def _series_values(series: pd.Series[Any]) -> Any:
    if isinstance(series.dtype, np.dtype):
        return series.to_numpy()
    if isinstance(series.dtype, pd.DatetimeTZDtype):
        return series.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy()
    return series.astype(object).to_numpy()


def _column_values(name: str, value: Any) -> Any:
    """A dict-of-columns entry as a 1-D sequence (an ``[N, 1]`` array is flattened)."""
    if isinstance(value, pd.Series):
        return _series_values(value)
    if isinstance(value, np.ndarray) and value.ndim != 1:
        if value.ndim == 2 and value.shape[1] == 1:
            return value[:, 0]
        raise ValidationError(
            f"column {name!r} has shape {value.shape}; a column holds one value per row.",
            hint="Send each column as a 1-D list or array (or shape [N, 1]).",
        )
    return value


def _is_column(value: Any) -> bool:
    return isinstance(value, list | tuple | np.ndarray | pd.Series | pd.Index)


def _categorical(values: np.ndarray, dtype: pd.CategoricalDtype) -> pd.Categorical:
    """Values as a Categorical: known categories keep their codes, unseen ones are appended after them."""
    known = dtype.categories
    unseen = pd.unique(values[~pd.isna(values) & ~np.isin(values, known.to_numpy())])
    if len(unseen):
        dtype = pd.CategoricalDtype([*known, *unseen])
    return pd.Categorical(values, dtype=dtype)


def _no_rows() -> NoReturn:
    raise ValidationError("The input has no rows.", hint="Send at least one row to predict.")


class Coercer:
    """Turns caller data into one model's input, per its signature and ``input_format``.

    Args:
        signature: The model's input signature.
        input_format: What the adapter's ``predict`` takes.

    Example:
        >>> sig = Signature(kind="tabular", columns=(ColumnSpec(name="age", type="int", dtype="int64"),))
        >>> Coercer(sig, "array").coerce([{"age": 31.0}, {"age": 45}])
        array([[31.],
               [45.]])
    """

    def __init__(self, signature: Signature, input_format: InputFormat) -> None:
        self.signature = signature
        self.input_format = input_format
        self._columns = tuple(resolve_column(c) for c in signature.columns)
        self._names = tuple(c.name for c in self._columns)
        self._known = frozenset(self._names)
        self._all_float = all(c.type in NUMERIC_TYPES for c in self._columns)
        self._int_idx = [i for i, c in enumerate(self._columns) if c.type == "int"]
        int_infos = [np.iinfo(self._columns[i].dtype) for i in self._int_idx]
        # Ints that a float64 holds exactly and every int column's dtype can take.
        self._int_range = (
            max([-(2**53), *(int(i.min) for i in int_infos)]),
            min([2**53, *(int(i.max) for i in int_infos)]),
        )
        self._all_float32 = all(c.dtype == np.float32 for c in self._columns)
        self._plain_float_frame = all(c.dtype == np.float64 and c.frame_dtype is None for c in self._columns)
        self._getter = itemgetter(*self._names) if self._names else None
        self._tensors = {t.name: t for t in signature.tensors}
        # One float tensor: an ndarray of its dtype and shape only needs the no-infinity check.
        only = signature.tensors[0] if len(signature.tensors) == 1 else None
        self._float_tensor = only if only is not None and _is_float_dtype(only.dtype) else None
        self._float_dtype = np.dtype(only.dtype) if self._float_tensor is not None and only is not None else None

    def coerce(self, data: Any) -> ModelInput:
        """Validate and convert ``data``; raise :class:`ValidationError` naming the first problem."""
        if self.signature.kind == "tensor":
            return self._coerce_tensors(data)
        return self._coerce_tabular(data)

    def coerce_for_batch(self, data: Any) -> tuple[ModelInput, bool]:
        """:meth:`coerce`, leaving the infinity check of a ready float tensor to the whole batch.

        A single float tensor that already has the signature's dtype and shape is handed back as it
        is, unchecked for infinities: the batch it joins is checked once (:meth:`finite`), and
        only when that fails are its members checked one by one with :meth:`coerce`, which names
        the problem. Anything else is coerced (and checked) now.

        Returns:
            The model input, and whether it is fully checked.
        """
        fast = self._float_tensor
        if (
            fast is not None
            and self.input_format == "array"
            and type(data) is np.ndarray
            and _fits_float_shape(data, self._float_dtype, fast.shape)
        ):
            return data, False
        return self.coerce(data), True

    @staticmethod
    def finite(model_input: ModelInput) -> bool:
        """Whether a batch of :meth:`coerce_for_batch` inputs holds no infinity (only float arrays can)."""
        return type(model_input) is not np.ndarray or model_input.dtype.kind != "f" or _no_infinity(model_input)

    # --- tabular ---------------------------------------------------------------------------------

    def _coerce_tabular(self, data: Any) -> ModelInput:
        if isinstance(data, pd.DataFrame):
            return self._from_frame(data)
        if isinstance(data, pd.Series):
            return self._coerce_tabular([data.to_dict()])
        if isinstance(data, Mapping):
            return self._from_mapping(data)
        if isinstance(data, np.ndarray):
            return self._from_rows(self._rows_of_array(data))
        if isinstance(data, list | tuple):
            if not data:
                _no_rows()
            if isinstance(data[0], Mapping):
                return self._from_records(data)
            if not _is_column(data[0]):
                return self._from_rows(self._rows_of_array(as_object(data)))
            return self._from_rows(data)
        pa = sys.modules.get("pyarrow")
        if pa is not None and isinstance(data, pa.Table | pa.RecordBatch):
            self._check_names(list(data.column_names))
            columns = {n: data.column(n).to_numpy(zero_copy_only=False) for n in self._names}
            return self._from_columns(columns, data.num_rows)
        raise ValidationError(
            f"Input of type {type(data).__name__} is not supported for a tabular model.",
            hint="Pass a DataFrame, a list of records, a dict of columns, or a 2-D array with the columns "
            f"in this order: {', '.join(self._names)}.",
        )

    def _from_frame(self, data: pd.DataFrame) -> ModelInput:
        self._check_names(list(data.columns))
        if self._all_float and len(data):
            try:
                ordered = data if tuple(data.columns) == self._names else data[list(self._names)]
                fast = self._fast_block(ordered.to_numpy(dtype=np.float64))
            except (TypeError, ValueError):
                fast = None
            if fast is not None:
                return fast
        return self._from_columns({n: _series_values(data[n]) for n in self._names}, len(data), block=False)

    def _check_names(self, names: Sequence[Any]) -> None:
        if tuple(names) == self._names:
            return
        present = set(names)
        missing = [n for n in self._names if n not in present]
        if missing:
            more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
            raise ValidationError(
                f"Missing column {missing[0]!r}{more}.",
                hint=f"The model needs the columns: {', '.join(self._names)}.",
            )
        extra = [n for n in names if n not in self._known]
        if extra:
            shown = ", ".join(repr(n) for n in extra[:10]) + (" ..." if len(extra) > 10 else "")
            warnings.warn(
                f"Ignoring {len(extra)} column(s) the model does not use: {shown}.", ExtraColumnsWarning, stacklevel=4
            )

    def _from_mapping(self, data: Mapping[Any, Any]) -> ModelInput:
        if data and not any(_is_column(v) for v in data.values()):
            return self._from_records([data])
        self._check_names(list(data))
        columns = {n: _column_values(n, data[n]) for n in self._names}
        lengths = {n: (len(v) if _is_column(v) else 1) for n, v in columns.items()}
        first = self._names[0]
        for name, length in lengths.items():
            if length != lengths[first]:
                raise ValidationError(
                    f"column {name!r} has {length} values but column {first!r} has {lengths[first]}.",
                    hint="Give every column the same number of values (one per row).",
                )
        columns = {n: (v if _is_column(v) else [v]) for n, v in columns.items()}
        return self._from_columns(columns, lengths[first])

    def _from_records(self, records: Sequence[Mapping[Any, Any]]) -> ModelInput:
        not_mapping = [i for i, r in enumerate(records) if not isinstance(r, Mapping)]
        if not_mapping:
            raise ValidationError(
                f"Row {not_mapping[0]} is a {type(records[not_mapping[0]]).__name__}, not a record (a dict).",
                hint="Send every row in the same form: all records ({column: value}) or all lists of values.",
            )
        self._check_names(list(set().union(*records)))
        assert self._getter is not None
        try:
            rows = list(map(self._getter, records))
        except KeyError as exc:
            row = next(i for i, r in enumerate(records) if exc.args[0] not in r)
            raise ValidationError(
                f"Missing column {exc.args[0]!r} in row {row}.",
                hint=f"Every record needs the columns: {', '.join(self._names)}.",
            ) from None
        if len(self._names) == 1:
            return self._from_columns({self._names[0]: rows}, len(rows))
        return self._from_rows(rows)

    def _rows_of_array(self, data: np.ndarray) -> np.ndarray:
        width = len(self._names)
        if data.ndim == 1 and width == 1:
            data = data.reshape(-1, 1)
        elif data.ndim == 1 and data.shape[0] == width:
            data = data.reshape(1, -1)
        if data.ndim != 2 or data.shape[1] != width:
            raise ValidationError(
                f"Input array has shape {data.shape}; the model takes {width} column(s) per row.",
                hint=f"Send a 2-D array of shape (rows, {width}) with the columns in this order: "
                f"{', '.join(self._names)}.",
            )
        return data

    def _from_rows(self, rows: Any) -> ModelInput:
        n = len(rows)
        if n == 0:
            _no_rows()
        width = len(self._names)
        if self._all_float:
            block = _float_block(rows)
            if block is not None and block.shape[1] == width:
                fast = self._fast_block(block)
                if fast is not None:
                    return fast
        if not isinstance(rows, np.ndarray):
            wrong = [i for i, r in enumerate(rows) if not _is_column(r) or len(r) != width]
            if wrong:
                raise ValidationError(
                    f"Row {wrong[0]} has {_row_width(rows[wrong[0]])} values; the model takes {width}.",
                    hint=f"Send {width} values per row, in this order: {', '.join(self._names)}.",
                )
            return self._from_columns(dict(zip(self._names, zip(*rows, strict=True), strict=True)), n, block=False)
        return self._from_columns({name: rows[:, j] for j, name in enumerate(self._names)}, n, block=False)

    def _fast_block(self, block: np.ndarray) -> ModelInput | None:
        """An all-numeric (rows x columns) float block shaped per ``input_format``; ``None`` if a check fails.

        One vectorised check covers every column; on failure the caller casts column by column,
        which names the bad column and row.
        """
        if not np.isfinite(block).all():
            return None
        ints = block[:, self._int_idx]
        if ints.size and (
            (ints != np.trunc(ints)).any() or ints.min() < self._int_range[0] or ints.max() > self._int_range[1]
        ):
            return None
        if self.input_format == "array":
            return block.astype(np.float32) if self._all_float32 else block
        if self.input_format == "frame" and self._plain_float_frame:
            return pd.DataFrame(block, columns=list(self._names), copy=False)
        return self._assemble({c.name: block[:, j].astype(c.dtype) for j, c in enumerate(self._columns)})

    def _from_columns(self, raw: Mapping[str, Any], n: int, *, block: bool = True) -> ModelInput:
        if n == 0:
            _no_rows()
        if block and self._all_float:
            columns = _float_block([raw[name] for name in self._names])
            if columns is not None and columns.shape == (len(self._names), n):
                fast = self._fast_block(columns.T)
                if fast is not None:
                    return fast
        values = {c.name: COLUMN_CASTS[c.type](raw[c.name], c) for c in self._columns}
        return self._assemble(values)

    def _assemble(self, values: dict[str, np.ndarray]) -> ModelInput:
        if self.input_format == "arrays":
            return {name: arr.reshape(-1, 1) for name, arr in values.items()}
        if self.input_format == "frame":
            return pd.DataFrame(
                {c.name: self._frame_column(values[c.name], c) for c in self._columns},
                copy=False,
            )
        parts = [v.view(np.int64).astype(np.float64) if v.dtype.kind == "M" else v for v in values.values()]
        if any(p.dtype == object for p in parts):
            return np.column_stack([p.astype(object) for p in parts])
        dtype = np.float32 if all(p.dtype == np.float32 for p in parts) else np.float64
        return np.column_stack(parts).astype(dtype, copy=False)

    @staticmethod
    def _frame_column(values: np.ndarray, col: Column) -> Any:
        if col.frame_dtype is None:
            return values
        if col.tz is not None:
            return pd.DatetimeIndex(values).tz_localize("UTC").tz_convert(col.tz)
        if values.dtype.kind == "f" and col.type in ("int", "bool"):
            present = values.astype(object)
            present[np.isnan(values)] = None
            return pd.array(present, dtype=col.frame_dtype)
        if isinstance(col.frame_dtype, pd.CategoricalDtype):
            return _categorical(values, col.frame_dtype)
        if isinstance(col.frame_dtype, np.dtype) and col.frame_dtype.kind == "O":
            return pd.Series(values, dtype=object, copy=False)  # a bare array would be inferred as str
        return pd.array(values, dtype=col.frame_dtype)

    # --- tensors ---------------------------------------------------------------------------------

    def _coerce_tensors(self, data: Any) -> ModelInput:
        fast = self._float_tensor
        if fast is not None and type(data) is np.ndarray and _fits_float(data, self._float_dtype, fast.shape):
            return self._tensor_input({fast.name: data})  # what coerce_tensor returns for it, checked the same
        specs = self.signature.tensors
        if isinstance(data, Mapping):
            arrays = self._tensor_dict(data)
        elif len(specs) == 1:
            if isinstance(data, pd.DataFrame):
                data = data.to_numpy()
            arrays = {specs[0].name: coerce_tensor(data, specs[0])}
        else:
            raise ValidationError(
                f"The model takes {len(specs)} tensors ({', '.join(self._tensors)}); got one {type(data).__name__}.",
                hint="Send a dict of arrays keyed by tensor name.",
            )
        batch = {name: arr.shape[0] for name, arr in arrays.items()}
        if len(set(batch.values())) > 1:
            raise ValidationError(
                f"Tensors have different batch sizes: {batch}.",
                hint="Give every tensor the same first dimension (one entry per row).",
            )
        if next(iter(batch.values())) == 0:
            _no_rows()
        return self._tensor_input(arrays)

    def _tensor_input(self, arrays: dict[str, np.ndarray]) -> ModelInput:
        """Validated tensors (same batch size, at least one row) in the adapter's input format."""
        if self.input_format == "arrays":
            return arrays
        if len(arrays) != 1:
            raise Unsupported(
                f"A model with input_format {self.input_format!r} cannot take {len(arrays)} tensors.",
                hint="Use an adapter whose input_format is 'arrays' for multi-input models.",
            )
        array = next(iter(arrays.values()))
        if self.input_format == "frame":
            return pd.DataFrame(array.reshape(array.shape[0], -1))
        return array

    def _tensor_dict(self, data: Mapping[Any, Any]) -> dict[str, np.ndarray]:
        missing = [n for n in self._tensors if n not in data]
        if missing:
            raise ValidationError(
                f"Missing input tensor {missing[0]!r}.",
                hint=f"The model takes the tensors: {', '.join(self._tensors)}.",
            )
        extra = [k for k in data if k not in self._tensors]
        if extra:
            message = f"Ignoring input tensor(s) {extra!r}: not in the signature."
            warnings.warn(message, ExtraColumnsWarning, stacklevel=4)
        return {name: coerce_tensor(data[name], spec) for name, spec in self._tensors.items()}


def _is_float_dtype(dtype: str) -> bool:
    try:
        return np.dtype(dtype).kind == "f"
    except TypeError:
        return False


def _fits_float(arr: np.ndarray, dtype: np.dtype[Any] | None, shape: tuple[int, ...]) -> bool:
    """Whether ``arr`` already is a valid float tensor: dtype and rank equal, fixed dims equal, rows, no inf."""
    return _fits_float_shape(arr, dtype, shape) and _no_infinity(arr)


def _fits_float_shape(arr: np.ndarray, dtype: np.dtype[Any] | None, shape: tuple[int, ...]) -> bool:
    """Whether ``arr`` has the float tensor's dtype and shape (rank equal, fixed dims equal, rows)."""
    if arr.dtype != dtype or arr.ndim != len(shape) or arr.ndim == 0 or arr.shape[0] == 0:
        return False
    for d, a in zip(shape, arr.shape, strict=True):  # noqa: SIM110 - a loop: no generator per request
        if d != -1 and d != a:
            return False
    return True


def _no_infinity(arr: np.ndarray) -> bool:
    """Whether a float array holds no infinity (NaN allowed).

    The sum of squares is finite exactly when no element is infinite or NaN (barring overflow of
    huge values): one BLAS call instead of two ufunc passes, and only an inconclusive answer pays
    for the element-wise check.
    """
    flat = arr.reshape(-1)
    return math.isfinite(flat.dot(flat)) or not np.isinf(arr).any()


def _float_block(rows: Any) -> np.ndarray | None:
    """``rows`` as a 2-D float64 array, or ``None`` when numpy cannot make one (checked slowly later)."""
    try:
        block = np.asarray(rows, dtype=np.float64)
    except (TypeError, ValueError):
        return None
    return block if block.ndim == 2 else None


def _row_width(row: Any) -> int:
    return len(row) if _is_column(row) else 1


def coerce_input(data: Any, signature: Signature, input_format: InputFormat) -> ModelInput:
    """One-off coercion of ``data`` (see :class:`Coercer`; reuse a ``Coercer`` on hot paths)."""
    return Coercer(signature, input_format).coerce(data)
