"""How an ONNX export meets the bundle's signature: its input layout and its outputs.

An :class:`EdgeSpec` says which ONNX input each signature column (or tensor) feeds, in which
dtype, and which ONNX outputs hold the labels, the probabilities or the values. It is stored
as JSON in the ONNX model's metadata under :data:`METADATA_KEY`, so the exported model describes
itself: modelport's runner and the standalone ``predict.py`` build the same feed from the same
description. Three layouts exist:

- ``columns``: one ONNX input per signature column, shape ``[N, 1]`` (scikit-learn pipelines that
  start with a ``ColumnTransformer``, boosters with categorical features: strings stay strings and
  the encoding happens inside the graph);
- ``matrix``: one ONNX input ``[N, k]`` of floats (or strings) stacking the columns in signature order;
- ``tensors``: the signature's tensors, one ONNX input each, by name.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from modelport.bundle.flavors.base import ModelInput
from modelport.core.errors import IntegrityError, ValidationError

METADATA_KEY = "modelport"
"""Key of the ONNX ``metadata_props`` entry that holds the spec as JSON."""

SPEC_FORMAT = 1

Layout = Literal["columns", "matrix", "tensors"]
Task = Literal["classifier", "regressor", "tensor"]
FeedDtype = Literal["float32", "float64", "int64", "string"]

_NUMPY: dict[str, Any] = {"float32": np.float32, "float64": np.float64, "int64": np.int64, "string": object}


@dataclass(frozen=True)
class EdgeInput:
    """One ONNX input.

    Attributes:
        name: The ONNX input name.
        dtype: What it takes: ``float32``, ``float64``, ``int64`` or ``string``.
        sources: Signature columns stacked into it (``columns``: one; ``matrix``: all, in order)
            or the signature tensor it is (``tensors``).
    """

    name: str
    dtype: FeedDtype
    sources: tuple[str, ...]


@dataclass(frozen=True)
class EdgeSpec:
    """How to feed an exported ONNX model and read its answers.

    Attributes:
        layout: ``columns``, ``matrix`` or ``tensors`` (see the module docstring).
        inputs: The ONNX inputs, in the model's order.
        task: ``classifier`` (labels, maybe probabilities), ``regressor`` (values) or ``tensor``.
        classes: Class labels, in probability column order (classifiers).
        label_output: ONNX output holding the labels (classifiers).
        proba_output: ONNX output holding the probabilities, ``[N, len(classes)]``.
        value_output: ONNX output holding regression values or the output tensor.
    """

    layout: Layout
    inputs: tuple[EdgeInput, ...]
    task: Task
    classes: tuple[Any, ...] | None = None
    label_output: str | None = None
    proba_output: str | None = None
    value_output: str | None = None

    @property
    def output_names(self) -> tuple[str, ...]:
        """The ONNX outputs this spec reads, in a fixed order (labels, probabilities, values)."""
        names = (self.label_output, self.proba_output, self.value_output)
        return tuple(n for n in names if n is not None)

    def to_json(self) -> str:
        """The spec as a JSON document (what :data:`METADATA_KEY` holds)."""
        return json.dumps(
            {
                "format": SPEC_FORMAT,
                "layout": self.layout,
                "inputs": [{"name": i.name, "dtype": i.dtype, "sources": list(i.sources)} for i in self.inputs],
                "task": self.task,
                "classes": None if self.classes is None else list(self.classes),
                "outputs": {"label": self.label_output, "probabilities": self.proba_output, "value": self.value_output},
            },
            allow_nan=False,
        )

    @classmethod
    def from_json(cls, text: str) -> EdgeSpec:
        """Parse :meth:`to_json` output, raising :class:`IntegrityError` when it is not one."""
        try:
            data = json.loads(text)
            if data.get("format") != SPEC_FORMAT:
                raise ValueError(f"unknown format {data.get('format')!r}")
            outputs = data["outputs"]
            return cls(
                layout=data["layout"],
                inputs=tuple(EdgeInput(i["name"], i["dtype"], tuple(i["sources"])) for i in data["inputs"]),
                task=data["task"],
                classes=None if data.get("classes") is None else tuple(data["classes"]),
                label_output=outputs.get("label"),
                proba_output=outputs.get("probabilities"),
                value_output=outputs.get("value"),
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise IntegrityError(
                f"The ONNX model's '{METADATA_KEY}' metadata is not a valid edge spec: {exc}.",
                hint="Re-export the model with modelport export.",
            ) from exc

    def feed(self, data: ModelInput) -> dict[str, np.ndarray]:
        """The ONNX input feed for ``data`` (a DataFrame or dict of columns, an ndarray, or a dict of tensors).

        Raises:
            ValidationError: A column or tensor the model needs is missing.
        """
        if self.layout == "tensors":
            return self._tensor_feed(data)
        if isinstance(data, np.ndarray):
            if self.layout != "matrix" or len(self.inputs) != 1:
                raise ValidationError(
                    f"An array of shape {data.shape} cannot feed this model's {len(self.inputs)} column inputs.",
                    hint="Pass a DataFrame (or a dict of columns) named as in the signature.",
                )
            only = self.inputs[0]
            return {only.name: self._matrix(data, only)}
        feed: dict[str, np.ndarray] = {}
        for spec in self.inputs:
            columns = [_column(data, name, spec.dtype) for name in spec.sources]
            stacked = np.column_stack(columns) if len(columns) > 1 else columns[0].reshape(-1, 1)
            feed[spec.name] = stacked
        return feed

    def _matrix(self, array: np.ndarray, spec: EdgeInput) -> np.ndarray:
        matrix = array.reshape(-1, 1) if array.ndim == 1 else array
        if matrix.shape[1] != len(spec.sources):
            raise ValidationError(
                f"Input has {matrix.shape[1]} columns; the model takes {len(spec.sources)}.",
                hint=f"Pass the columns {list(spec.sources)} in this order.",
            )
        return _cast(matrix, spec.dtype)

    def _tensor_feed(self, data: ModelInput) -> dict[str, np.ndarray]:
        if isinstance(data, np.ndarray):
            if len(self.inputs) != 1:
                raise ValidationError(
                    f"This model takes {len(self.inputs)} tensors; got one array.",
                    hint=f"Pass a dict of arrays named {[i.name for i in self.inputs]}.",
                )
            return {self.inputs[0].name: _cast(data, self.inputs[0].dtype)}
        feed = {}
        for spec in self.inputs:
            source = spec.sources[0]
            if source not in data:
                raise ValidationError(f"Missing input tensor {source!r}.", hint="Pass every tensor of the signature.")
            feed[spec.name] = _cast(np.asarray(data[source]), spec.dtype)
        return feed

    def outputs(self, results: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray | None]:
        """``(predict, predict_proba)`` from the ONNX outputs named in :attr:`output_names`.

        Labels come back as a flat array; a single regression value per row as a flat array; a
        tensor output as it is. ``predict_proba`` is ``None`` unless the model has probabilities.
        """
        proba = None if self.proba_output is None else np.asarray(results[self.proba_output])
        if self.task == "classifier" and self.label_output is not None:
            return np.asarray(results[self.label_output]).reshape(-1), proba
        value = np.asarray(results[str(self.value_output)])
        if self.task == "regressor" and value.ndim == 2 and value.shape[1] == 1:
            value = value.reshape(-1)
        return value, proba


def _cast(array: np.ndarray, dtype: FeedDtype) -> np.ndarray:
    if dtype == "string":
        return np.asarray(array, dtype=object).astype(str).astype(object)
    return np.ascontiguousarray(np.asarray(array, dtype=_NUMPY[dtype]))


def _column(data: Any, name: str, dtype: FeedDtype) -> np.ndarray:
    if isinstance(data, pd.DataFrame):
        if name not in data.columns:
            raise ValidationError(f"Missing input column {name!r}.", hint="Pass every column of the signature.")
        series = data[name]
    else:
        if name not in data:
            raise ValidationError(f"Missing input column {name!r}.", hint="Pass every column of the signature.")
        series = pd.Series(np.asarray(data[name]).reshape(-1))
    if dtype == "string":
        return series.astype(object).where(series.notna(), "").astype(str).to_numpy(dtype=object)
    if dtype == "int64":
        return series.to_numpy(dtype=np.int64)
    return series.to_numpy(dtype=_NUMPY[dtype], na_value=np.nan)
