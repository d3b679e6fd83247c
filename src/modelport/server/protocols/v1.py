"""The friendly JSON shape (TF-Serving / KServe V1 ``:predict``).

Request: ``{"instances": [...]}`` with records (``{"col": value}``) or rows (lists in signature
order), or ``{"inputs": {...}}`` with one list per column (or per tensor); add
``"probabilities": true`` to also get class probabilities. Response:
``{"predictions": [...], "model_name", "model_version"}`` plus ``probabilities`` and ``classes``
when asked.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from modelport.core.errors import BadRequest, ValidationError
from modelport.core.types import Signature
from modelport.server.protocols.tensors import InferenceRequest, as_list

_HINT = 'Send {"instances": [{"col": value, ...}, ...]} or {"inputs": {"col": [values...]}}.'


def check_columns(names: Any, signature: Signature) -> None:
    """Refuse column names the model does not know (missing ones are reported by the coercer)."""
    if signature.kind != "tabular":
        return
    known = set(signature.column_names)
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValidationError(
            f"Unknown input column {unknown[0]!r}"
            + (f" (and {len(unknown) - 1} more)" if len(unknown) > 1 else "")
            + ".",
            hint=f"The model's columns are: {', '.join(signature.column_names)}.",
        )


def instances_data(instances: Any, signature: Signature) -> Any:
    """Turn a V1 ``instances`` list into coercer input, refusing unknown columns."""
    if not isinstance(instances, list) or not instances:
        raise BadRequest("'instances' must be a non-empty list.", hint=_HINT)
    first = instances[0]
    if isinstance(first, dict):
        if signature.kind == "tabular":
            if not all(isinstance(r, dict) for r in instances):
                raise BadRequest("Every instance must be a record when the first one is.", hint=_HINT)
            check_columns(set().union(*instances), signature)
            return instances
        return {name: [inst.get(name) for inst in instances] for name in signature_tensor_names(signature)}
    if signature.kind == "tensor" and len(signature.tensors) == 1:
        return {signature.tensors[0].name: instances}
    return instances


def signature_tensor_names(signature: Signature) -> tuple[str, ...]:
    """Names of a tensor model's inputs."""
    return tuple(t.name for t in signature.tensors)


def inputs_data(inputs: Any, signature: Signature) -> Any:
    """Turn a V1 ``inputs`` value (columns, or a list like ``instances``) into coercer input."""
    if isinstance(inputs, dict):
        if not inputs:
            raise BadRequest("'inputs' is empty.", hint=_HINT)
        check_columns(inputs, signature)
        return inputs
    if isinstance(inputs, list):
        return instances_data(inputs, signature)
    raise BadRequest(f"'inputs' must be an object of columns or a list, got {type(inputs).__name__}.", hint=_HINT)


def parse_predict(doc: Any, signature: Signature) -> InferenceRequest:
    """Parse a parsed V1 ``:predict`` document."""
    if not isinstance(doc, dict):
        raise BadRequest(f"The request must be a JSON object, got {type(doc).__name__}.", hint=_HINT)
    has_instances, has_inputs = "instances" in doc, "inputs" in doc
    if has_instances == has_inputs:
        raise BadRequest("Send exactly one of 'instances' and 'inputs'.", hint=_HINT)
    data = instances_data(doc["instances"], signature) if has_instances else inputs_data(doc["inputs"], signature)
    want_proba = doc.get("probabilities", False)
    if not isinstance(want_proba, bool):
        raise BadRequest("'probabilities' must be true or false.", hint=_HINT)
    outputs = ("predict", "predict_proba") if want_proba else ("predict",)
    return InferenceRequest(data, outputs)


def encode_predict(
    results: Mapping[str, np.ndarray], *, model: str, version: int, classes: tuple[Any, ...] | None
) -> dict[str, Any]:
    """The V1 response document."""
    doc: dict[str, Any] = {
        "predictions": as_list(results["predict"]),
        "model_name": model,
        "model_version": str(version),
    }
    proba = results.get("predict_proba")
    if proba is not None:
        doc["probabilities"] = as_list(proba)
        if classes is not None:
            doc["classes"] = list(classes)
    return doc
