"""The ``Predictor``: one loaded model, called safely — input coerced to its signature, outputs by name.

Every runtime (the server, batch jobs, ``modelport predict``, ``load_model``) predicts through a
:class:`Predictor`. ``predict``/``predict_proba`` take raw caller data; the server's micro-batching
path uses the lower-level steps instead: :meth:`Predictor.coerce` each request (so one bad request
fails alone), :meth:`Predictor.concat` the model inputs, :meth:`Predictor.run` once, then
:meth:`Predictor.split` the outputs back per request. Labels come back in their original class
types (whatever the adapter returns).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, cast

import numpy as np
import pandas as pd

from modelport.bundle.flavors.base import ModelAdapter, ModelInput
from modelport.bundle.loaded import LoadedBundle
from modelport.bundle.manifest import Manifest
from modelport.core.errors import ModelportError, Unsupported, ValidationError
from modelport.core.types import Signature
from modelport.runtime.coercion import Coercer

PREDICT = "predict"
PREDICT_PROBA = "predict_proba"


class Predictor:
    """A loaded model with input validation and named outputs.

    Args:
        bundle: The loaded bundle (manifest, adapter, reference statistics).
        adapter: Overrides the bundle's own adapter, e.g. an ONNX Runtime fast path; it must take
            the same signature.
        accelerated: A human note naming the fast path in use (e.g. ``"onnxruntime"``), or ``None``.

    Example:
        >>> predictor = Predictor(load_bundle("churn-bundle"))  # doctest: +SKIP
        >>> predictor.predict([{"age": 31, "plan": "pro"}])  # doctest: +SKIP
        array(['stay'], dtype=object)
    """

    def __init__(self, bundle: LoadedBundle, *, adapter: ModelAdapter | None = None, accelerated: str | None = None):
        self._bundle = bundle
        self._adapter = adapter if adapter is not None else bundle.adapter
        self._accelerated = accelerated
        self._coercer = Coercer(bundle.manifest.signature, self._adapter.input_format)
        names = (PREDICT, PREDICT_PROBA) if self._adapter.has_proba else (PREDICT,)
        self._output_names: tuple[str, ...] = names
        self._float_dtypes: dict[str, np.dtype[Any]] = {
            o.name: np.dtype(o.dtype) for o in bundle.manifest.signature.outputs if o.dtype.startswith("float")
        }

    def __repr__(self) -> str:
        note = f", accelerated={self._accelerated!r}" if self._accelerated else ""
        return f"Predictor(name={self.name!r}, version={self.version!r}, flavor={self.manifest.flavor!r}{note})"

    @property
    def name(self) -> str:
        """The model's name."""
        return self._bundle.manifest.name

    @property
    def version(self) -> int | None:
        """The registry version, or ``None`` for a bundle that was never registered."""
        return self._bundle.manifest.version

    @property
    def signature(self) -> Signature:
        """The model's input and output signature."""
        return self._bundle.manifest.signature

    @property
    def manifest(self) -> Manifest:
        """The bundle's manifest."""
        return self._bundle.manifest

    @property
    def bundle(self) -> LoadedBundle:
        """The loaded bundle this predictor wraps."""
        return self._bundle

    @property
    def adapter(self) -> ModelAdapter:
        """The adapter actually called (the override when one was given)."""
        return self._adapter

    @property
    def accelerated(self) -> str | None:
        """The fast path in use (e.g. ``"onnxruntime"``), or ``None`` for the native framework."""
        return self._accelerated

    @property
    def classes(self) -> tuple[Any, ...] | None:
        """Class labels of a classifier, in ``predict_proba`` column order; ``None`` otherwise."""
        return self._adapter.classes

    @property
    def has_proba(self) -> bool:
        """Whether :meth:`predict_proba` is available."""
        return self._adapter.has_proba

    @property
    def output_names(self) -> tuple[str, ...]:
        """Outputs :meth:`run` can compute: ``predict`` and, for probabilistic classifiers, ``predict_proba``."""
        return self._output_names

    def predict(self, data: Any) -> np.ndarray:
        """Predictions for ``data``, one per row.

        Args:
            data: A DataFrame, list of records, dict of columns, ndarray or list of rows (tabular
                models), or an ndarray / dict of arrays (tensor models).

        Raises:
            ValidationError: ``data`` does not match the signature (the message names the column,
                the first bad row and what was expected).
        """
        return self.run(self.coerce(data), (PREDICT,))[PREDICT]

    def predict_proba(self, data: Any) -> np.ndarray:
        """Class probabilities for ``data``, shape ``(rows, len(classes))``.

        Raises:
            Unsupported: The model has no probabilities (a regressor, or a classifier without them).
            ValidationError: ``data`` does not match the signature.
        """
        if not self.has_proba:
            raise Unsupported(
                f"Model {self.name!r} has no predict_proba.",
                hint="Call predict instead; only probabilistic classifiers have predict_proba.",
            )
        return self.run(self.coerce(data), (PREDICT_PROBA,))[PREDICT_PROBA]

    @property
    def coercer(self) -> Coercer:
        """The signature's validator and converter (what :meth:`coerce` calls)."""
        return self._coercer

    def coerce(self, data: Any) -> ModelInput:
        """Validate ``data`` against the signature and convert it to the adapter's input format."""
        return self._coercer.coerce(data)

    def run(self, model_input: ModelInput, outputs: Sequence[str] = (PREDICT,)) -> dict[str, np.ndarray]:
        """Call the model on already-coerced input.

        Args:
            model_input: The result of :meth:`coerce` (or :meth:`concat`).
            outputs: Names of the outputs wanted, among :attr:`output_names`.

        Returns:
            Output name → array with one entry per input row.

        Raises:
            ValidationError: An unknown output name, or the model rejected the input's values.
        """
        wanted = self.check_outputs(outputs)
        rows = self.n_rows(model_input)
        result: dict[str, np.ndarray] = {}
        for name in wanted:
            method = self._adapter.predict if name == PREDICT else self._adapter.predict_proba
            result[name] = self._call(method, model_input, name, rows)
        return result

    def check_outputs(self, outputs: Sequence[str]) -> tuple[str, ...]:
        """``outputs`` without duplicates, or :class:`ValidationError` for an unknown or empty selection."""
        if isinstance(outputs, str):
            outputs = (outputs,)
        unknown = [o for o in outputs if o not in self._output_names]
        if unknown or not outputs:
            shown = repr(unknown[0]) if unknown else "no output"
            raise ValidationError(
                f"Model {self.name!r} has {shown}; available outputs: {', '.join(self._output_names)}.",
                hint=f"Ask for one of: {', '.join(self._output_names)}.",
            )
        return tuple(dict.fromkeys(outputs))

    def _call(self, method: Any, model_input: ModelInput, name: str, rows: int) -> np.ndarray:
        try:
            value = np.asarray(method(model_input))
        except ModelportError:
            raise
        except ValueError as exc:
            raise ValidationError(
                f"Model {self.name!r} rejected the input: {exc}",
                hint="Check the values against what the model was trained on (e.g. unknown categories).",
            ) from exc
        if value.ndim == 0 or value.shape[0] != rows:
            raise ModelportError(
                f"Model {self.name!r} returned {value.shape[0] if value.ndim else 'a scalar'} {name} value(s) "
                f"for {rows} input row(s).",
                hint="The model's predict must return one value per input row.",
            )
        declared = self._float_dtypes.get(name)
        if declared is not None and value.dtype.kind == "f" and value.dtype != declared:
            value = value.astype(declared)  # a fast path (e.g. float32 ONNX) answers in the declared dtype
        return value

    def n_rows(self, model_input: ModelInput) -> int:
        """Number of rows (the batch dimension) of a coerced model input."""
        if type(model_input) is np.ndarray:  # the usual case, before the (slower) ABC check
            return int(model_input.shape[0])
        if isinstance(model_input, Mapping):
            first = next(iter(model_input.values()), None)
            return 0 if first is None else int(first.shape[0])
        return int(model_input.shape[0])

    def concat(self, inputs: Sequence[ModelInput]) -> ModelInput:
        """Stack coerced inputs row-wise into one batch (the inverse of :meth:`split` on outputs)."""
        if not inputs:
            raise ValueError("concat needs at least one input")
        if len(inputs) == 1:
            return inputs[0]
        first = inputs[0]
        if isinstance(first, pd.DataFrame):
            return pd.concat([cast(pd.DataFrame, part) for part in inputs], ignore_index=True)
        if isinstance(first, np.ndarray):
            return np.concatenate([cast(np.ndarray, part) for part in inputs], axis=0)
        parts = [cast(dict[str, np.ndarray], part) for part in inputs]
        return {key: np.concatenate([part[key] for part in parts], axis=0) for key in first}

    @staticmethod
    def split(outputs: Mapping[str, np.ndarray], sizes: Sequence[int]) -> list[dict[str, np.ndarray]]:
        """Cut batch outputs back into per-request outputs of ``sizes`` rows each, in order."""
        if len(sizes) == 1:
            return [dict(outputs)]
        bounds = np.cumsum(sizes)[:-1]
        parts: list[dict[str, np.ndarray]] = [{} for _ in sizes]
        for name, array in outputs.items():
            for part, piece in zip(parts, np.split(array, bounds), strict=True):
                part[name] = piece
        return parts
