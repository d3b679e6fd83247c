"""Small edits of ONNX graphs that the converters need, and reading ONNX bytes safely.

Converters hand back an ``onnx.ModelProto``; these helpers finish it: labels recomputed from the
probabilities with the bundle's own classes, tree ensembles fed in float32 inside an otherwise
float64 graph (what scikit-learn does), the :class:`~modelport.edge.spec.EdgeSpec` stored in the
metadata. :func:`parse_model` turns bytes into a checked model or a clear ``IntegrityError``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from modelport.core.errors import IntegrityError, Unsupported
from modelport.edge.spec import METADATA_KEY, EdgeSpec

ML_DOMAIN = "ai.onnx.ml"
TREE_OPS = frozenset({"TreeEnsembleClassifier", "TreeEnsembleRegressor", "TreeEnsemble"})


def parse_model(data: bytes, *, source: str) -> Any:
    """Parse and check ONNX ``data``; ``source`` names it in errors.

    Raises:
        IntegrityError: The bytes are not a valid ONNX model (corrupted, truncated, not ONNX).
    """
    import onnx

    try:
        model = onnx.load_model_from_string(data)
        onnx.checker.check_model(model)
    except Exception as exc:  # onnx raises DecodeError, ValidationError or others by version
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise IntegrityError(
            f"{source} is not a valid ONNX model ({first}).",
            hint="The file is corrupted or truncated; export the model again.",
        ) from exc
    if not model.graph.node:
        raise IntegrityError(f"{source} is an empty ONNX graph.", hint="Export the model again.")
    return model


def op_types(model: Any) -> set[str]:
    """Operator types used in ``model``'s main graph."""
    return {node.op_type for node in model.graph.node}


def has_tree_ensemble(model: Any) -> bool:
    """Whether ``model`` holds a tree-ensemble operator."""
    return bool(op_types(model) & TREE_OPS)


def set_spec(model: Any, spec: EdgeSpec, extra: dict[str, str] | None = None) -> None:
    """Store ``spec`` (and ``extra`` entries) in ``model``'s metadata, replacing older values."""
    entries = {METADATA_KEY: spec.to_json(), **(extra or {})}
    kept = [p for p in model.metadata_props if p.key not in entries]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    for key, value in entries.items():
        prop = model.metadata_props.add()
        prop.key, prop.value = key, value


def read_spec(metadata: dict[str, str], *, source: str) -> EdgeSpec:
    """The spec stored in an ONNX model's custom metadata map."""
    if METADATA_KEY not in metadata:
        raise IntegrityError(
            f"{source} carries no '{METADATA_KEY}' metadata describing its inputs.",
            hint="Export it with modelport export, which writes the description.",
        )
    return EdgeSpec.from_json(metadata[METADATA_KEY])


def ensure_default_opset(model: Any, version: int = 13) -> None:
    """Import the default ONNX domain (at ``version``) when the model only imported ``ai.onnx.ml``."""
    from onnx import helper

    if not any(entry.domain in ("", "ai.onnx") for entry in model.opset_import):
        model.opset_import.append(helper.make_opsetid("", version))


def relabel(model: Any, *, label_output: str, proba_output: str, classes: Sequence[Any]) -> None:
    """Make ``label_output`` ``classes[argmax(proba_output)]``, replacing what the converter computed.

    Boosters converted from their native files know class indices only; the bundle knows the labels.
    """
    import onnx
    from onnx import TensorProto, helper

    values = np.asarray(list(classes))
    if values.dtype.kind in "iub":
        tensor = helper.make_tensor("mp_classes", TensorProto.INT64, [len(values)], values.astype(np.int64).tolist())
    elif values.dtype.kind == "f":
        tensor = helper.make_tensor("mp_classes", TensorProto.DOUBLE, [len(values)], values.astype(np.float64).tolist())
    elif values.dtype.kind in "UO":
        encoded: list[Any] = [str(v).encode() for v in values]
        tensor = helper.make_tensor("mp_classes", TensorProto.STRING, [len(values)], encoded)
    else:
        raise Unsupported(f"Class labels of dtype {values.dtype} cannot be exported.", hint="Use str or int labels.")
    ensure_default_opset(model)
    graph = model.graph
    for node in graph.node:
        for i, name in enumerate(node.output):
            if name == label_output:
                node.output[i] = f"{label_output}_mp_index"
    graph.initializer.append(tensor)
    graph.node.extend(
        [
            helper.make_node("ArgMax", [proba_output], ["mp_argmax"], axis=1, keepdims=0, name="mp_argmax"),
            helper.make_node("Gather", ["mp_classes", "mp_argmax"], [label_output], axis=0, name="mp_label"),
        ]
    )
    for output in graph.output:
        if output.name == label_output:
            output.CopyFrom(helper.make_tensor_value_info(label_output, tensor.data_type, [None]))
    del graph.value_info[:]
    onnx.checker.check_model(model)


def trees_in_float(model: Any) -> None:
    """Feed every tree ensemble float32 and give its scores back as float64.

    skl2onnx writes float64 graphs whose tree operators ONNX Runtime only runs in float32. This
    matches scikit-learn, which casts the features to float32 before walking its trees, while the
    preprocessing before them stays in float64.
    """
    from onnx import TensorProto, helper

    graph = model.graph
    declared = {o.name: o.type.tensor_type.elem_type for o in graph.output}
    nodes = []
    for node in graph.node:
        if node.domain != ML_DOMAIN or node.op_type not in TREE_OPS:
            nodes.append(node)
            continue
        features = node.input[0]
        nodes.append(helper.make_node("Cast", [features], [f"{node.name}_mp_f32"], to=TensorProto.FLOAT))
        node.input[0] = f"{node.name}_mp_f32"
        nodes.append(node)
        scores = 0 if node.op_type != "TreeEnsembleClassifier" else 1
        original = node.output[scores]
        if declared.get(original, TensorProto.DOUBLE) == TensorProto.FLOAT:
            continue
        node.output[scores] = f"{original}_mp_f32"
        nodes.append(helper.make_node("Cast", [node.output[scores]], [original], to=TensorProto.DOUBLE))
    del graph.node[:]
    graph.node.extend(nodes)
    del graph.value_info[:]


def columns_to_matrix(model: Any, *, matrix_input: str, columns: Sequence[tuple[str, tuple[str, ...] | None]]) -> None:
    """Replace the float matrix input by one ``[N, 1]`` input per column, concatenated inside the graph.

    A column with categories takes strings, turned into their code (position among the
    categories; NaN when unknown) by a ``LabelEncoder``: the encoding a booster saw in training
    travels inside the model. Other columns take float32.

    Raises:
        Unsupported: A column name clashes with a name inside the graph.
    """
    from onnx import TensorProto, helper

    graph = model.graph
    taken = {o for n in graph.node for o in n.output} | {i.name for i in graph.initializer}
    clash = [name for name, _ in columns if name in taken]
    if clash:
        raise Unsupported(
            f"Cannot export: input column {clash[0]!r} has the name of a tensor inside the converted graph.",
            hint="Rename that column before training, or serve the native bundle.",
        )
    ensure_default_opset(model)
    inner = "mp_matrix"
    for node in graph.node:
        for i, name in enumerate(node.input):
            if name == matrix_input:
                node.input[i] = inner
    nodes, inputs, parts = [], [], []
    for name, categories in columns:
        if categories is None:
            inputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, [None, 1]))
            parts.append(name)
            continue
        inputs.append(helper.make_tensor_value_info(name, TensorProto.STRING, [None, 1]))
        coded = f"mp_code_{len(parts)}"
        nodes.append(
            helper.make_node(
                "LabelEncoder",
                [name],
                [coded],
                domain=ML_DOMAIN,
                keys_strings=list(categories),
                values_floats=[float(i) for i in range(len(categories))],
                default_float=float("nan"),
            )
        )
        parts.append(coded)
    nodes.append(helper.make_node("Concat", parts, [inner], axis=1))
    kept = [i for i in graph.input if i.name != matrix_input]
    del graph.input[:]
    graph.input.extend([*inputs, *kept])
    existing = list(graph.node)
    del graph.node[:]
    graph.node.extend([*nodes, *existing])
    if not any(o.domain == ML_DOMAIN and o.version >= 2 for o in model.opset_import):
        for entry in model.opset_import:
            if entry.domain == ML_DOMAIN:
                entry.version = max(entry.version, 2)
                break
        else:
            model.opset_import.append(helper.make_opsetid(ML_DOMAIN, 2))
    del graph.value_info[:]


def flatten_output(model: Any, name: str) -> None:
    """Turn the ``[N, 1]`` output ``name`` into ``[N]`` (one value per row, as scikit-learn returns)."""
    from onnx import TensorProto, helper

    graph = model.graph
    output = next(o for o in graph.output if o.name == name)
    dims = output.type.tensor_type.shape.dim
    if len(dims) != 2 or dims[1].dim_value != 1:
        return
    ensure_default_opset(model)
    inner = f"{name}_mp_2d"
    for node in graph.node:
        for i, out in enumerate(node.output):
            if out == name:
                node.output[i] = inner
    graph.initializer.append(helper.make_tensor("mp_flat", TensorProto.INT64, [1], [-1]))
    graph.node.append(helper.make_node("Reshape", [inner, "mp_flat"], [name], name="mp_flatten"))
    elem_type = output.type.tensor_type.elem_type
    output.CopyFrom(helper.make_tensor_value_info(name, elem_type, [None]))
    del graph.value_info[:]


def imputers_in_double(model: Any) -> None:
    """Replace ``ai.onnx.ml`` ``Imputer`` nodes (float32-only in ONNX Runtime) by ``IsNaN``/``Equal`` + ``Where``.

    A float64 graph keeps its imputed values in float64, as scikit-learn's ``SimpleImputer`` does.
    """
    from onnx import TensorProto, helper

    graph = model.graph
    nodes = []
    for node in graph.node:
        if node.domain != ML_DOMAIN or node.op_type != "Imputer":
            nodes.append(node)
            continue
        attributes = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        values = [float(v) for v in attributes.get("imputed_value_floats", [])]
        replaced = float(attributes.get("replaced_value_float", float("nan")))
        prefix = f"{node.name or node.output[0]}_mp"
        graph.initializer.append(helper.make_tensor(f"{prefix}_fill", TensorProto.DOUBLE, [1, len(values)], values))
        if np.isnan(replaced):
            nodes.append(helper.make_node("IsNaN", [node.input[0]], [f"{prefix}_mask"]))
        else:
            graph.initializer.append(helper.make_tensor(f"{prefix}_replaced", TensorProto.DOUBLE, [], [replaced]))
            nodes.append(helper.make_node("Equal", [node.input[0], f"{prefix}_replaced"], [f"{prefix}_mask"]))
        nodes.append(helper.make_node("Where", [f"{prefix}_mask", f"{prefix}_fill", node.input[0]], [node.output[0]]))
    del graph.node[:]
    graph.node.extend(nodes)
    del graph.value_info[:]
