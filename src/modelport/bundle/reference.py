"""Reference statistics: what the training data looked like, stored for drift detection.

The statistics are a JSON-able dict, stored as ``reference/stats.json`` in the bundle::

    {
      "format": 1,
      "row_count": 1000,                       # rows of the reference data
      "columns": {
        "<column>": {                          # one entry per input column (see below for tensors)
          "kind": "numeric",                   # float, int and datetime columns (datetime as epoch seconds)
          "count": 990,                        # non-missing values
          "missing_rate": 0.01,                # share of None/NaN/NaT among all rows
          "quantiles": [101 floats],           # at 0.00, 0.01, ..., 1.00 over the finite values
          "histogram": {"edges": [21 floats], "counts": [20 ints]},   # equal-width bins
          "mean": 0.1, "std": 1.0, "min": -3.2, "max": 3.4
        },
        "<column>": {
          "kind": "categorical",               # string, category and bool columns
          "count": 1000, "missing_rate": 0.0,
          "frequencies": {"<value>": 0.4, ...} # share of the non-missing values; keys are str(value);
        }                                      # past MAX_CATEGORIES the rest is summed under "__other__"
      },
      "predictions": {...},                    # the same per-column shape, for the predict output
      "probabilities": {"<class>": {...}},     # numeric stats of each predict_proba column, if any
    }

Statistics of a numeric column with no finite value are ``null``. For tensor signatures, a 2-D
tensor with at most :data:`MAX_TENSOR_COLUMNS` features gets one entry per feature, named
``"<tensor>[<j>]"``; any other tensor gets one numeric entry over all its values, under its name.
Everything is computed with vectorised numpy/pandas operations, never a Python loop over rows.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from modelport.bundle.flavors.base import ModelInput
from modelport.bundle.signature import DEFAULT_TENSOR_NAME, plain_value
from modelport.core.errors import ValidationError
from modelport.core.types import ColumnSpec, Signature

FORMAT = 1
QUANTILE_LEVELS = np.linspace(0.0, 1.0, 101)
HISTOGRAM_BINS = 20
MAX_CATEGORIES = 100
OTHER_KEY = "__other__"
MAX_TENSOR_COLUMNS = 256
MAX_SAMPLE_ROWS = 1000
"""Rows kept in ``reference/sample.parquet`` (a seeded random subset, in the original order)."""
_TENSORS_KEY = b"modelport.tensors"


def compute_reference(
    data: ModelInput,
    signature: Signature,
    *,
    predictions: np.ndarray | None = None,
    probabilities: np.ndarray | None = None,
) -> dict[str, Any]:
    """Reference statistics of ``data`` in the format documented above.

    Args:
        data: Reference rows: a DataFrame for tabular signatures, an ndarray or dict of ndarrays for tensors.
        signature: The model's signature (columns, tensors and outputs).
        predictions: The model's ``predict`` output on ``data`` (or on a subset of it), if known.
        probabilities: The model's ``predict_proba`` output, columns in class order, if known.

    Raises:
        ValidationError: ``data`` lacks a column or tensor of the signature.
    """
    columns: dict[str, dict[str, Any]] = {}
    if signature.kind == "tabular":
        frame = _frame(data, signature)
        for spec in signature.columns:
            columns[spec.name] = _column_stats(frame[spec.name], spec)
        row_count = len(frame)
    else:
        arrays = tensor_arrays(data, signature)
        for name, array in arrays.items():
            columns.update(_tensor_stats(name, array))
        row_count = int(next(iter(arrays.values())).shape[0]) if arrays else 0
    stats: dict[str, Any] = {"format": FORMAT, "row_count": row_count, "columns": columns}
    if predictions is not None:
        stats["predictions"] = _prediction_stats(np.asarray(predictions), signature)
    if probabilities is not None:
        stats["probabilities"] = _probability_stats(np.asarray(probabilities), signature)
    return stats


def numeric_stats(values: np.ndarray) -> dict[str, Any]:
    """Numeric statistics of a 1-D float array in which NaN marks a missing value."""
    total = int(values.size)
    missing = np.isnan(values)
    finite = values[np.isfinite(values)]
    stats: dict[str, Any] = {
        "kind": "numeric",
        "count": total - int(missing.sum()),
        "missing_rate": float(missing.mean()) if total else 0.0,
    }
    if finite.size == 0:
        return {**stats, "quantiles": None, "histogram": None, "mean": None, "std": None, "min": None, "max": None}
    counts, edges = np.histogram(finite, bins=HISTOGRAM_BINS)
    return {
        **stats,
        "quantiles": np.quantile(finite, QUANTILE_LEVELS).tolist(),
        "histogram": {"edges": edges.tolist(), "counts": counts.tolist()},
        "mean": float(finite.mean()),
        "std": float(finite.std()),
        "min": float(finite.min()),
        "max": float(finite.max()),
    }


def categorical_stats(series: pd.Series[Any]) -> dict[str, Any]:
    """Categorical statistics of a Series: frequencies of ``str(value)`` among non-missing values."""
    total = len(series)
    present = series.dropna()
    shares = present.astype(str).value_counts(normalize=True, sort=True)
    frequencies = {str(k): float(v) for k, v in shares.iloc[:MAX_CATEGORIES].items()}
    if len(shares) > MAX_CATEGORIES:
        frequencies[OTHER_KEY] = float(shares.iloc[MAX_CATEGORIES:].sum())
    return {
        "kind": "categorical",
        "count": len(present),
        "missing_rate": float(1.0 - len(present) / total) if total else 0.0,
        "frequencies": frequencies,
    }


def tensor_arrays(data: ModelInput, signature: Signature) -> dict[str, np.ndarray]:
    """The named arrays of tensor data (an ndarray is the single tensor of the signature)."""
    names = [t.name for t in signature.tensors] or [DEFAULT_TENSOR_NAME]
    if isinstance(data, np.ndarray):
        return {names[0]: data}
    if isinstance(data, dict):
        missing = [n for n in names if n not in data]
        if missing:
            raise ValidationError(
                f"Reference data lacks tensor {missing[0]!r}.",
                hint=f"Pass a dict with the tensors {names}.",
            )
        return {n: np.asarray(data[n]) for n in names}
    raise ValidationError(
        f"Reference data of type {type(data).__name__} does not fit a tensor signature.",
        hint="Pass a numpy array (or a dict of arrays) like sample_input.",
    )


def _frame(data: ModelInput, signature: Signature) -> pd.DataFrame:
    if not isinstance(data, pd.DataFrame):
        raise ValidationError(
            f"Reference data of type {type(data).__name__} does not fit a tabular signature.",
            hint="Pass reference_data as a DataFrame with the same columns as sample_input.",
        )
    missing = [c for c in signature.column_names if c not in data.columns]
    if missing:
        raise ValidationError(
            f"Reference data lacks column {missing[0]!r} of the signature.",
            hint=f"Pass reference_data with the columns {list(signature.column_names)}.",
        )
    return data


def _column_stats(series: pd.Series[Any], spec: ColumnSpec) -> dict[str, Any]:
    if spec.type in ("string", "category", "bool"):
        return categorical_stats(series)
    if spec.type == "datetime":
        stamps = pd.to_datetime(series, errors="coerce", utc=True)
        seconds = (stamps - pd.Timestamp(0, tz="UTC")).dt.total_seconds()
        return numeric_stats(seconds.to_numpy(dtype="float64", na_value=np.nan))
    numeric = pd.to_numeric(series, errors="coerce")
    return numeric_stats(numeric.to_numpy(dtype="float64", na_value=np.nan))


def _tensor_stats(name: str, array: np.ndarray) -> dict[str, dict[str, Any]]:
    if array.dtype.kind in "UO":
        return {name: categorical_stats(pd.Series(array.ravel()))}
    values = array.astype("float64", copy=False)
    if values.ndim == 2 and values.shape[1] <= MAX_TENSOR_COLUMNS:
        return {f"{name}[{j}]": numeric_stats(values[:, j]) for j in range(values.shape[1])}
    return {name: numeric_stats(values.ravel())}


def _prediction_stats(predictions: np.ndarray, signature: Signature) -> dict[str, Any]:
    spec = signature.output("predict")
    numeric = predictions.dtype.kind in "fc" if spec is None else spec.kind in ("regression", "tensor")
    if numeric and predictions.dtype.kind in "biufc":
        return numeric_stats(predictions.astype("float64").ravel())
    return categorical_stats(pd.Series(predictions.ravel(), dtype=object))


def _probability_stats(probabilities: np.ndarray, signature: Signature) -> dict[str, Any]:
    probabilities = probabilities.reshape(probabilities.shape[0], -1).astype("float64")
    classes = signature.classes or tuple(range(probabilities.shape[1]))
    return {str(plain_value(c)): numeric_stats(probabilities[:, j]) for j, c in enumerate(classes)}


def subset_rows(data: ModelInput, max_rows: int, *, seed: int = 0) -> ModelInput:
    """At most ``max_rows`` rows of ``data``: a seeded random subset kept in the original order."""
    n = _row_count(data)
    if n <= max_rows:
        return data
    index = np.sort(np.random.default_rng(seed).choice(n, size=max_rows, replace=False))
    if isinstance(data, pd.DataFrame):
        return data.iloc[index].reset_index(drop=True)
    if isinstance(data, np.ndarray):
        return data[index]
    return {k: np.asarray(v)[index] for k, v in data.items()}


def write_sample(data: ModelInput, signature: Signature, path: Path) -> None:
    """Write at most :data:`MAX_SAMPLE_ROWS` rows of ``data`` to the Parquet file ``path``.

    Tabular data keeps the signature's columns with their dtypes. Tensors are stored one column
    each (a fixed-size list per row), with their dtype and shape in the file's metadata.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = subset_rows(data, MAX_SAMPLE_ROWS)
    if signature.kind == "tabular":
        frame = _frame(rows, signature)[list(signature.column_names)].reset_index(drop=True)
        frame.to_parquet(path, index=False)
        return
    arrays = tensor_arrays(rows, signature)
    columns: dict[str, Any] = {}
    layout: dict[str, Any] = {"single": isinstance(rows, np.ndarray), "tensors": {}}
    for name, array in arrays.items():
        flat = array.reshape(array.shape[0], -1)
        values = pa.array(flat.reshape(-1))
        columns[name] = pa.FixedSizeListArray.from_arrays(values, max(flat.shape[1], 1)) if array.ndim > 1 else values
        layout["tensors"][name] = {"dtype": str(array.dtype), "shape": list(array.shape[1:])}
    table = pa.table(columns).replace_schema_metadata({_TENSORS_KEY: json.dumps(layout).encode()})
    pq.write_table(table, path)


def read_sample(path: Path, signature: Signature | None = None) -> ModelInput:
    """Read a sample written by :func:`write_sample`: a DataFrame, an ndarray or a dict of ndarrays.

    With the ``signature``, columns recorded as ``object`` come back as ``object`` (Parquet reads
    text as the pandas string dtype).
    """
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    metadata = table.schema.metadata or {}
    if _TENSORS_KEY not in metadata:
        frame: pd.DataFrame = table.to_pandas()
        for spec in signature.columns if signature is not None else ():
            if spec.dtype == "object" and spec.name in frame.columns:
                frame[spec.name] = frame[spec.name].astype(object)
        return frame
    layout = json.loads(metadata[_TENSORS_KEY])
    arrays: dict[str, np.ndarray] = {}
    for name, info in layout["tensors"].items():
        column = table.column(name).combine_chunks()
        values = column.flatten() if info["shape"] else column
        flat = np.asarray(values.to_numpy(zero_copy_only=False))
        arrays[name] = flat.astype(info["dtype"]).reshape(-1, *info["shape"])
    if layout["single"] and len(arrays) == 1:
        return next(iter(arrays.values()))
    return arrays


def _row_count(data: ModelInput) -> int:
    if isinstance(data, pd.DataFrame):
        return len(data)
    if isinstance(data, np.ndarray):
        return int(data.shape[0])
    return int(np.asarray(next(iter(data.values()))).shape[0]) if data else 0
