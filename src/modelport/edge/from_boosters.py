"""XGBoost and LightGBM models to ONNX, through onnxmltools.

Both frameworks walk their trees in float32, so the export takes one float32 matrix whose
columns follow the booster's own feature order. A LightGBM model with categorical features
instead takes one input per column: its string categories are turned into the training codes
inside the graph, so no caller needs to know them. Labels are recomputed inside the graph as
``classes[argmax(probabilities)]`` with the bundle's classes, which is what the native adapters
answer; a single regression value per row comes back flat. onnxmltools converts up to opset
:data:`MAX_OPSET`.
"""

from __future__ import annotations

import copy
from typing import Any

from modelport.core.errors import MissingDependency, Unsupported
from modelport.core.types import Signature
from modelport.edge.graph import columns_to_matrix, flatten_output, relabel
from modelport.edge.spec import EdgeInput, EdgeSpec, Layout

MAX_OPSET = 15
"""The highest opset onnxmltools' XGBoost and LightGBM converters support."""

_SERVE_NATIVE = "or serve the native bundle (modelport serve) instead of exporting it"


def _onnxmltools() -> tuple[Any, Any]:
    """The ``onnxmltools`` module and its ``FloatTensorType``."""
    try:
        import onnxmltools  # type: ignore[import-untyped]
        from onnxmltools.convert.common.data_types import FloatTensorType  # type: ignore[import-untyped]
    except ImportError as exc:
        raise MissingDependency(
            "Exporting XGBoost or LightGBM models needs the 'onnxmltools' package.",
            hint="Install it with: pip install onnxmltools",
        ) from exc
    return onnxmltools, FloatTensorType


def convert_xgboost_model(
    model: Any, signature: Signature, *, classes: tuple[Any, ...] | None, has_proba: bool, opset: int
) -> tuple[Any, EdgeSpec, str]:
    """Convert an XGBoost wrapper or Booster to ONNX; see :func:`convert_lightgbm_model` for the return value."""
    onnxmltools, float_tensor = _onnxmltools()

    booster = model if type(model).__name__ == "Booster" else model.get_booster()
    names = list(booster.feature_names or [])
    types = list(booster.feature_types or [])
    categorical = [n for n, t in zip(names, types, strict=False) if t == "c"]
    if categorical:
        raise Unsupported(
            f"Cannot export this XGBoost model: it splits on categorical feature {categorical[0]!r}, which the "
            "ONNX converter does not support.",
            hint=f"One-hot or ordinal-encode the categorical columns before training, {_SERVE_NATIVE}.",
        )
    clone = copy.deepcopy(model)
    clone_booster = clone if type(clone).__name__ == "Booster" else clone.get_booster()
    clone_booster.feature_names = None  # onnxmltools reads features as f0, f1, ...
    clone_booster.feature_types = None
    width = booster.num_features()
    layout, sources = _sources(signature, names, width)
    try:
        onx = onnxmltools.convert_xgboost(
            clone, initial_types=[("input", float_tensor([None, width]))], target_opset=min(opset, MAX_OPSET)
        )
    except Exception as exc:  # onnxmltools raises many types
        raise _refusal("XGBoost", model, exc) from exc
    spec = _finish(onx, layout, (EdgeInput("input", "float32", sources),), classes, has_proba)
    return onx, spec, f"xgboost {type(model).__name__}"


def convert_lightgbm_model(
    model: Any, signature: Signature, *, classes: tuple[Any, ...] | None, has_proba: bool, opset: int
) -> tuple[Any, EdgeSpec, str]:
    """Convert a LightGBM wrapper or Booster to ONNX.

    Returns:
        The ONNX model, its :class:`EdgeSpec` and a one-line description.

    Raises:
        Unsupported: The converter refused the model (objective, ranking, ...).
    """
    onnxmltools, float_tensor = _onnxmltools()

    booster = model if type(model).__name__ == "Booster" else model.booster_
    names = [str(n) for n in booster.feature_name()]
    if names == [f"Column_{i}" for i in range(len(names))]:
        names = []
    layout, sources = _sources(signature, names, booster.num_feature())
    try:
        onx = onnxmltools.convert_lightgbm(
            booster,
            initial_types=[("input", float_tensor([None, booster.num_feature()]))],
            target_opset=min(opset, MAX_OPSET),
            zipmap=False,
        )
    except Exception as exc:  # onnxmltools raises many types
        raise _refusal("LightGBM", model, exc) from exc
    codes = dict(_lightgbm_categorical(booster, names))
    inputs: tuple[EdgeInput, ...] = (EdgeInput("input", "float32", sources),)
    if codes:
        columns_to_matrix(onx, matrix_input="input", columns=[(c, codes.get(c)) for c in sources])
        layout = "columns"
        inputs = tuple(EdgeInput(c, "string" if c in codes else "float32", (c,)) for c in sources)
    spec = _finish(onx, layout, inputs, classes, has_proba)
    return onx, spec, f"lightgbm {type(model).__name__}"


def _lightgbm_categorical(booster: Any, names: list[str]) -> tuple[tuple[str, tuple[str, ...]], ...]:
    categories = booster.pandas_categorical or []
    if not categories:
        return ()
    infos = booster.dump_model(num_iteration=1).get("feature_infos", {})
    cat_names = [n for n in names if infos.get(n, {}).get("values")]
    if len(cat_names) != len(categories):
        raise Unsupported(
            f"Cannot export this LightGBM model: it records {len(categories)} categorical feature(s) but "
            f"{len(cat_names)} carry categories.",
            hint=f"Train it on a DataFrame with pandas 'category' columns, {_SERVE_NATIVE}.",
        )
    return tuple((name, tuple(str(c) for c in cats)) for name, cats in zip(cat_names, categories, strict=False))


def _sources(signature: Signature, names: list[str], width: int) -> tuple[Layout, tuple[str, ...]]:
    """The layout, and the signature columns in the booster's feature order (or the one tensor)."""
    if signature.kind == "tensor":
        if len(signature.tensors) != 1:
            raise Unsupported(
                f"Cannot export a booster taking {len(signature.tensors)} tensors.",
                hint=f"Train it on one 2-D array or a DataFrame, {_SERVE_NATIVE}.",
            )
        return "tensors", (signature.tensors[0].name,)
    known = set(signature.column_names)
    if names and all(n in known for n in names):
        return "matrix", tuple(names)
    if len(signature.columns) != width:
        raise Unsupported(
            f"Cannot export: the booster has {width} features but the signature {len(signature.columns)} columns.",
            hint=f"Re-save the bundle with the training columns as sample_input, {_SERVE_NATIVE}.",
        )
    return "matrix", signature.column_names


def _finish(
    onx: Any, layout: Layout, inputs: tuple[EdgeInput, ...], classes: tuple[Any, ...] | None, has_proba: bool
) -> EdgeSpec:
    outputs = [o.name for o in onx.graph.output]
    for output in onx.graph.output:  # converters declare a fixed batch of 1 for labels; make it free
        dims = output.type.tensor_type.shape.dim
        if dims:
            dims[0].dim_param = "N"
    if classes is None:
        flatten_output(onx, outputs[0])
        return EdgeSpec(layout=layout, inputs=inputs, task="regressor", value_output=outputs[0])
    if len(outputs) < 2:
        raise Unsupported("The converted classifier gives no probabilities.", hint=_SERVE_NATIVE.capitalize() + ".")
    relabel(onx, label_output=outputs[0], proba_output=outputs[1], classes=classes)
    return EdgeSpec(
        layout=layout,
        inputs=inputs,
        task="classifier",
        classes=classes,
        label_output=outputs[0],
        proba_output=outputs[1] if has_proba else None,
    )


def _refusal(framework: str, model: Any, exc: Exception) -> Unsupported:
    text = str(exc).strip()
    first = text.splitlines()[0][:200] if text else type(exc).__name__
    return Unsupported(
        f"Cannot export this {framework} {type(model).__name__}: the ONNX converter failed: {first}",
        hint=f"Check the objective is a standard classification or regression one, {_SERVE_NATIVE}.",
    )
