"""scikit-learn estimators and pipelines to ONNX, through skl2onnx.

Every step is checked against skl2onnx's converters before converting, so a refusal names the
step (``step 'pre' → transformer 'text' (FunctionTransformer)``) and what to do. A pipeline that
starts with a ``ColumnTransformer`` gets one ONNX input per column (strings stay strings, the
encoders run inside ONNX); any other model takes one matrix. Classifiers are converted without
ZipMap, so probabilities come back as a ``[N, classes]`` tensor.
"""

from __future__ import annotations

from collections.abc import Iterator
from types import TracebackType
from typing import Any

from modelport.core.errors import Unsupported
from modelport.core.types import ColumnSpec, Signature
from modelport.edge.graph import flatten_output, imputers_in_double, trees_in_float
from modelport.edge.spec import EdgeInput, EdgeSpec, FeedDtype

_SERVE_NATIVE = "or serve the native bundle (modelport serve) instead of exporting it"


def convert_sklearn_model(
    model: Any, signature: Signature, *, classes: tuple[Any, ...] | None, has_proba: bool, opset: int, precision: str
) -> tuple[Any, EdgeSpec, str]:
    """Convert a fitted scikit-learn ``model`` to ONNX.

    Args:
        model: The fitted estimator or pipeline.
        signature: The bundle's input signature (tabular or a single tensor).
        classes: Class labels when the model is a classifier.
        has_proba: Whether the model has ``predict_proba``.
        opset: The ONNX opset to target.
        precision: ``float32`` or ``float64`` for float inputs and arithmetic.

    Returns:
        The ONNX model, its :class:`EdgeSpec` (outputs included) and a one-line description.

    Raises:
        Unsupported: A step has no ONNX converter, or the conversion failed (the message names the step).
    """
    from skl2onnx import convert_sklearn

    paths = dict(_walk(model, _name(model)))
    for path, step in paths.values():
        _check_step(path, step)
    layout, inputs, initial_types = _inputs(model, signature, precision)
    is_classifier = classes is not None
    options = {id(model): {"zipmap": False}} if is_classifier else None
    try:
        onx = convert_sklearn(
            model, initial_types=initial_types, options=options, target_opset={"": opset, "ai.onnx.ml": 3}
        )
    except Exception as exc:  # skl2onnx raises many types; each becomes one clear refusal
        raise _refusal(exc, model, paths) from exc
    if precision == "float64":
        imputers_in_double(onx)
        trees_in_float(onx)
    names = [o.name for o in onx.graph.output]
    if is_classifier:
        spec = EdgeSpec(
            layout=layout,
            inputs=inputs,
            task="classifier",
            classes=classes,
            label_output=names[0],
            proba_output=names[1] if has_proba and len(names) > 1 else None,
        )
    else:
        flatten_output(onx, names[0])
        spec = EdgeSpec(layout=layout, inputs=inputs, task="regressor", value_output=names[0])
    return onx, spec, describe(model)


def describe(model: Any) -> str:
    """A one-line description such as ``Pipeline(ColumnTransformer, LogisticRegression)``."""
    steps = getattr(model, "steps", None)
    if steps is None:
        return type(model).__name__
    inner = ", ".join(type(s).__name__ if not isinstance(s, str) else s for _, s in steps)
    return f"Pipeline({inner})"


def _name(model: Any) -> str:
    return f"model ({type(model).__name__})"


def _walk(model: Any, path: str) -> Iterator[tuple[int, tuple[str, Any]]]:
    """``(id(step), (path, step))`` for the model and every step of its pipelines and column transformers."""
    yield id(model), (path, model)
    children: list[tuple[str, Any]] = []
    if hasattr(model, "steps"):
        children = [(f"step {n!r}", s) for n, s in model.steps]
    elif hasattr(model, "transformers_"):
        children = [(f"transformer {n!r}", t) for n, t, _ in model.transformers_]
    elif hasattr(model, "transformer_list"):
        children = [(f"transformer {n!r}", t) for n, t in model.transformer_list]
    for label, child in children:
        if isinstance(child, str) or child is None:
            continue
        yield from _walk(child, f"{path} → {label} ({type(child).__name__})")


def _check_step(path: str, step: Any) -> None:
    from skl2onnx import get_model_alias

    if type(step).__name__ == "FunctionTransformer" and getattr(step, "func", None) is not None:
        func = getattr(step.func, "__name__", repr(step.func))
        raise Unsupported(
            f"Cannot export {path}: a FunctionTransformer runs arbitrary Python ({func}), which ONNX cannot hold.",
            hint=f"Replace it by built-in scikit-learn transformers (or do it before the model), {_SERVE_NATIVE}.",
        )
    try:
        get_model_alias(type(step))
    except (RuntimeError, KeyError) as exc:
        raise Unsupported(
            f"Cannot export {path}: skl2onnx has no ONNX converter for {type(step).__qualname__}.",
            hint=f"Replace it by a supported step (https://onnx.ai/sklearn-onnx/supported.html), {_SERVE_NATIVE}.",
        ) from exc


def _starts_with_column_transformer(model: Any) -> bool:
    if hasattr(model, "transformers_"):
        return True
    steps = getattr(model, "steps", None)
    return steps is not None and len(steps) > 0 and _starts_with_column_transformer(steps[0][1])


def _inputs(model: Any, signature: Signature, precision: str) -> tuple[Any, tuple[EdgeInput, ...], list[Any]]:
    float_dtype: FeedDtype = "float64" if precision == "float64" else "float32"
    if signature.kind == "tensor":
        if len(signature.tensors) != 1 or len(signature.tensors[0].shape) != 2:
            raise Unsupported(
                f"Cannot export a scikit-learn model taking {len(signature.tensors)} tensor(s) of shape "
                f"{[t.shape for t in signature.tensors]}.",
                hint=f"Export models trained on one 2-D array or a DataFrame, {_SERVE_NATIVE}.",
            )
        tensor = signature.tensors[0]
        width = tensor.shape[1]
        dtype: FeedDtype = "string" if tensor.dtype in ("object", "str", "string") else float_dtype
        spec = EdgeInput(name=tensor.name, dtype=dtype, sources=(tensor.name,))
        return "tensors", (spec,), [(tensor.name, _tensor_type(dtype, width))]
    columns = signature.columns
    for column in columns:
        if column.type == "datetime":
            raise Unsupported(
                f"Cannot export: column {column.name!r} is a datetime, which ONNX models do not take.",
                hint=f"Turn it into numbers (e.g. days since an epoch) before training, {_SERVE_NATIVE}.",
            )
    if _starts_with_column_transformer(model):
        inputs = tuple(EdgeInput(c.name, _column_dtype(c, float_dtype), (c.name,)) for c in columns)
        return "columns", inputs, [(i.name, _tensor_type(i.dtype, 1)) for i in inputs]
    kinds = {_column_dtype(c, float_dtype) == "string" for c in columns}
    if len(kinds) > 1:
        text = next(c.name for c in columns if _column_dtype(c, float_dtype) == "string")
        number = next(c.name for c in columns if _column_dtype(c, float_dtype) != "string")
        raise Unsupported(
            f"Cannot export: text column {text!r} and numeric column {number!r} reach the model without a "
            "ColumnTransformer to encode them.",
            hint="Start the pipeline with a ColumnTransformer (e.g. OneHotEncoder on the text columns), "
            f"{_SERVE_NATIVE}.",
        )
    dtype = "string" if kinds == {True} else float_dtype
    matrix = EdgeInput(name="input", dtype=dtype, sources=tuple(c.name for c in columns))
    return "matrix", (matrix,), [("input", _tensor_type(dtype, len(columns)))]


def _column_dtype(column: ColumnSpec, float_dtype: FeedDtype) -> FeedDtype:
    if column.type in ("string", "category"):
        return "string"
    if column.type == "int" and not column.nullable:
        return "int64"
    return float_dtype


def _tensor_type(dtype: FeedDtype, width: int) -> Any:
    from skl2onnx.common.data_types import DoubleTensorType, FloatTensorType, Int64TensorType, StringTensorType

    types = {"float32": FloatTensorType, "float64": DoubleTensorType, "int64": Int64TensorType}
    return types.get(dtype, StringTensorType)([None, width])


def _refusal(exc: Exception, model: Any, paths: dict[int, tuple[str, Any]]) -> Unsupported:
    """An :class:`Unsupported` naming the step whose converter raised ``exc`` (found in its traceback)."""
    text = str(exc).strip()
    first = text.splitlines()[0][:200] if text else type(exc).__name__
    failing = _failing_step(exc.__traceback__, paths)
    where = failing[0] if failing else _name(model)
    detail = "" if not failing else f" ({type(failing[1]).__name__})"
    return Unsupported(
        f"Cannot export {where}{detail}: skl2onnx failed to convert it: {first}",
        hint=f"Replace that step by a supported equivalent, try another --opset, {_SERVE_NATIVE}.",
    )


def _failing_step(tb: TracebackType | None, paths: dict[int, tuple[str, Any]]) -> tuple[str, Any] | None:
    """The innermost known step whose skl2onnx ``operator`` appears in the traceback's frames."""
    found = None
    while tb is not None:
        operator = tb.tb_frame.f_locals.get("operator")
        raw = getattr(operator, "raw_operator", None)
        if raw is not None and id(raw) in paths:
            found = paths[id(raw)]
        tb = tb.tb_next
    return found
