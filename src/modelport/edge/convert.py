"""A loaded bundle to an ONNX model and the :class:`~modelport.edge.spec.EdgeSpec` that feeds it.

:func:`convert` dispatches on the bundle's flavor: scikit-learn (skl2onnx), XGBoost and LightGBM
(onnxmltools), PyTorch (``torch.onnx.export``); an ``onnx`` bundle passes through. Anything else,
or a step no converter knows, raises :class:`~modelport.core.errors.Unsupported` naming it and
saying what to do. The spec is stored in the model's metadata, so the bytes describe themselves.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from modelport.bundle.io import read_reference_sample
from modelport.bundle.loaded import LoadedBundle
from modelport.bundle.manifest import ARTIFACTS_DIR
from modelport.core.errors import IntegrityError, MissingDependency, Unsupported
from modelport.core.types import Signature
from modelport.edge.graph import has_tree_ensemble, parse_model, read_spec, set_spec
from modelport.edge.spec import EdgeInput, EdgeSpec, FeedDtype, Layout, Task

DEFAULT_OPSET = 17
"""ONNX opset targeted by default: run by every ONNX Runtime since 1.14 (boosters use at most 15)."""

Precision = Literal["float32", "float64"]

CONVERTIBLE_FLAVORS = ("sklearn", "xgboost", "lightgbm", "torch", "onnx")

_ONNX_TYPES: dict[str, FeedDtype] = {
    "tensor(float)": "float32",
    "tensor(double)": "float64",
    "tensor(int64)": "int64",
    "tensor(string)": "string",
}


@dataclass(frozen=True)
class Conversion:
    """An ONNX model made from a bundle.

    Attributes:
        model_bytes: The serialised ``ModelProto``, spec in its metadata.
        spec: How to feed it and read its outputs.
        framework: The source bundle's flavor.
        description: What was converted, e.g. ``sklearn Pipeline(StandardScaler, LogisticRegression)``.
        precision: ``float32`` or ``float64``: the float type of its inputs and arithmetic.
        opset: The default-domain opset of the model.
        tree_ensemble: Whether it holds tree-ensemble operators (not quantizable).
    """

    model_bytes: bytes
    spec: EdgeSpec
    framework: str
    description: str
    precision: Precision
    opset: int
    tree_ensemble: bool


def convert(bundle: LoadedBundle, *, opset: int | None = None, precision: Precision = "float32") -> Conversion:
    """Convert ``bundle``'s model to ONNX.

    Args:
        bundle: A loaded bundle of flavor sklearn, xgboost, lightgbm, torch or onnx.
        opset: The ONNX opset to target (default :data:`DEFAULT_OPSET`).
        precision: ``float64`` keeps scikit-learn's float64 arithmetic (tree ensembles still
            compare in float32, like scikit-learn); other frameworks ignore it.

    Raises:
        Unsupported: The flavor or a step of the model cannot be converted; the message names it.
        MissingDependency: The converter's package is not installed.
    """
    flavor = bundle.manifest.flavor
    target = DEFAULT_OPSET if opset is None else opset
    if flavor not in CONVERTIBLE_FLAVORS:
        raise Unsupported(
            f"Cannot export model {bundle.manifest.name!r}: flavor {flavor!r} has no ONNX converter.",
            hint=f"Export bundles of flavor {', '.join(CONVERTIBLE_FLAVORS)}, or serve the native bundle instead.",
        )
    if flavor == "onnx":
        return _pass_through(bundle)
    _require("onnx", "onnx")
    signature = bundle.manifest.signature
    adapter = bundle.adapter
    model = native_model(adapter)
    used: Precision = "float32"
    if flavor == "sklearn":
        _require("skl2onnx", "onnx")
        from modelport.edge.from_sklearn import convert_sklearn_model

        used = precision
        onx, spec, description = convert_sklearn_model(
            model, signature, classes=adapter.classes, has_proba=adapter.has_proba, opset=target, precision=precision
        )
        description = f"sklearn {description}"
    elif flavor in ("xgboost", "lightgbm"):
        from modelport.edge.from_boosters import convert_lightgbm_model, convert_xgboost_model

        convert_booster = convert_xgboost_model if flavor == "xgboost" else convert_lightgbm_model
        onx, spec, description = convert_booster(
            model, signature, classes=adapter.classes, has_proba=adapter.has_proba, opset=target
        )
    else:
        from modelport.edge.from_torch import convert_torch_model

        float_dtype = str(bundle.manifest.flavor_options.get("float_dtype", "float32"))
        used = "float64" if float_dtype == "float64" else "float32"
        onx, spec, description = convert_torch_model(
            model, signature, example=_example(bundle), float_dtype=float_dtype, opset=target
        )
    set_spec(onx, spec)
    data = onx.SerializeToString()
    checked = parse_model(data, source=f"The ONNX conversion of {bundle.manifest.name!r}")
    return Conversion(
        model_bytes=data,
        spec=spec,
        framework=flavor,
        description=description,
        precision=used,
        opset=_opset(checked),
        tree_ensemble=has_tree_ensemble(checked),
    )


def native_model(adapter: Any) -> Any:
    """The framework object behind a flavor's adapter (its ``model``, or the module it wraps)."""
    for attribute in ("model", "module", "_model", "_module"):
        found = getattr(adapter, attribute, None)
        if found is not None:
            return found
    raise Unsupported(
        f"The {type(adapter).__name__} does not expose its model, so it cannot be converted.",
        hint="Serve the native bundle instead of exporting it.",
    )


def _require(module: str, extra: str) -> None:
    import importlib.util

    if importlib.util.find_spec(module) is None:
        raise MissingDependency.for_extra(module, extra)


def _example(bundle: LoadedBundle) -> np.ndarray | None:
    sample = read_reference_sample(bundle.path)
    if isinstance(sample, dict):
        sample = next(iter(sample.values()), None)
    elif sample is not None and not isinstance(sample, np.ndarray):
        sample = sample[list(bundle.manifest.signature.column_names)].to_numpy(dtype=np.float64, na_value=np.nan)
    return None if sample is None else np.asarray(sample)


def _opset(model: Any) -> int:
    return next((int(e.version) for e in model.opset_import if e.domain in ("", "ai.onnx")), 0)


def _pass_through(bundle: LoadedBundle) -> Conversion:
    """An ``onnx`` bundle's model as it is, with a spec read from its metadata or derived from its graph."""
    path = bundle.path / ARTIFACTS_DIR / "model.onnx"
    if (bundle.path / ARTIFACTS_DIR / "model.onnx.data").exists():
        raise Unsupported(
            f"Cannot export model {bundle.manifest.name!r}: its weights live in an external data file.",
            hint="Edge exports hold one self-contained file; serve this bundle instead.",
        )
    data = path.read_bytes()
    model = parse_model(data, source=str(path))
    metadata = {p.key: p.value for p in model.metadata_props}
    try:
        spec = read_spec(metadata, source=str(path))
    except IntegrityError:  # no (or an unreadable) modelport description: derive one from the graph
        spec = _derived_spec(model, bundle)
        set_spec(model, spec)
        data = model.SerializeToString()
    return Conversion(
        model_bytes=data,
        spec=spec,
        framework="onnx",
        description=f"onnx {model.producer_name} {model.producer_version}".strip(),
        precision="float64" if any(i.dtype == "float64" for i in spec.inputs) else "float32",
        opset=_opset(model),
        tree_ensemble=has_tree_ensemble(model),
    )


def _derived_spec(model: Any, bundle: LoadedBundle) -> EdgeSpec:
    signature: Signature = bundle.manifest.signature
    options = bundle.manifest.flavor_options
    inputs = [(i.name, _feed_dtype(i)) for i in model.graph.input]
    outputs = list(model.graph.output)
    if any(not o.type.HasField("tensor_type") for o in outputs):
        raise Unsupported(
            f"Cannot export model {bundle.manifest.name!r}: an output is not a tensor (a ZipMap of probabilities?).",
            hint="Convert the classifier with zipmap=False (skl2onnx options={id(model): {'zipmap': False}}).",
        )
    layout: Layout
    if signature.kind == "tensor":
        layout = "tensors"
        feeds = tuple(EdgeInput(n, d, (t.name,)) for (n, d), t in zip(inputs, signature.tensors, strict=False))
    elif len(inputs) == 1:
        layout = "matrix"
        columns = tuple(options.get("column_names") or signature.column_names)
        feeds = (EdgeInput(inputs[0][0], inputs[0][1], columns),)
    else:
        layout = "columns"
        feeds = tuple(EdgeInput(n, d, (n,)) for n, d in inputs)
    adapter = bundle.adapter
    first = outputs[0].name
    if adapter.has_proba and adapter.classes is not None:
        proba = options.get("proba_output") or next((o.name for o in outputs[1:]), None)
        return EdgeSpec(
            layout=layout,
            inputs=feeds,
            task="classifier",
            classes=adapter.classes,
            label_output=first,
            proba_output=proba,
        )
    task: Task = "regressor" if signature.kind == "tabular" else "tensor"
    return EdgeSpec(layout=layout, inputs=feeds, task=task, value_output=first)


def _feed_dtype(value_info: Any) -> FeedDtype:
    from onnx import helper

    elem = value_info.type.tensor_type.elem_type
    name = f"tensor({helper.tensor_dtype_to_string(elem).removeprefix('TensorProto.').lower()})"
    if name not in _ONNX_TYPES:
        raise Unsupported(
            f"ONNX input {value_info.name!r} has type {name}, which the edge runtime cannot feed.",
            hint=f"Use inputs of type {', '.join(_ONNX_TYPES)}.",
        )
    return _ONNX_TYPES[name]
