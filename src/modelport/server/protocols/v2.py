"""Open Inference Protocol V2 (KServe/Triton/MLServer REST): request parsing and response encoding.

Tabular models take one input per column (``name`` = column, shape ``[rows]`` or ``[rows, 1]``) or
one 2-D input ``[rows, columns]`` with the columns in signature order; tensor models one tensor per
input. The binary tensor extension is supported both ways: an input with
``parameters.binary_data_size`` reads its bytes from the tail of the body (after
``Inference-Header-Content-Length`` bytes of JSON); an output asked for with
``parameters.binary_data`` (or every output with request ``parameters.binary_data_output``) is
returned the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from modelport.core.errors import BadRequest, ValidationError
from modelport.core.types import Signature
from modelport.server.limits import Body, check_depth, load_json
from modelport.server.protocols.tensors import (
    DATATYPES,
    InferenceRequest,
    array_from_binary,
    array_from_json,
    array_to_binary,
    as_list,
    column_datatype,
    datatype_of,
    dumps,
    shape_of,
)

_HINT = "See the Open Inference Protocol: {'inputs': [{'name', 'shape', 'datatype', 'data'}], 'outputs': [...]}."


def _string_or_none(value: Any, where: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise BadRequest(f"{where} must be a string, got {type(value).__name__}.", hint=_HINT)


def _mapping(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise BadRequest(f"{where} must be an object, got {type(value).__name__}.", hint=_HINT)
    return value


def _read_inputs(raw_inputs: Any, body: Body) -> dict[str, np.ndarray]:
    if type(raw_inputs) is not list or not raw_inputs:
        raise BadRequest("'inputs' must be a non-empty list of tensors.", hint=_HINT)
    offset = body.json_length or 0
    arrays: dict[str, np.ndarray] = {}
    for i, tensor in enumerate(raw_inputs):
        if type(tensor) is not dict:
            raise BadRequest(f"inputs[{i}] must be an object, got {type(tensor).__name__}.", hint=_HINT)
        name = tensor.get("name")
        if type(name) is not str or not name:
            raise BadRequest(f"inputs[{i}] has no 'name'.", hint=_HINT)
        if name in arrays:
            raise BadRequest(f"input {name!r} is given twice.", hint="Send each input once.")
        where = _Where(name)
        shape = shape_of(tensor.get("shape"), where)
        datatype = tensor.get("datatype")
        params = tensor.get("parameters")
        size = None if params is None else _mapping(params, f"{where} parameters").get("binary_data_size")
        if size is not None:
            if body.json_length is None or not isinstance(size, int) or size < 0 or offset + size > len(body.data):
                raise BadRequest(
                    f"{where}: binary_data_size {size!r} does not fit the binary part of the body.",
                    hint="Send the Inference-Header-Content-Length header and one binary tensor per such input.",
                )
            raw = memoryview(body.data)[offset : offset + size]
            arrays[name] = array_from_binary(raw, str(datatype), shape, where)
            offset += size
        elif "data" in tensor:
            arrays[name] = array_from_json(tensor["data"], str(datatype) if datatype else "", shape, where)
        else:
            raise BadRequest(f"{where} has neither 'data' nor parameters.binary_data_size.", hint=_HINT)
    return arrays


class _Where(str):
    """``input 'name'`` for error messages, formatted only when a message uses it."""

    __slots__ = ()

    def __new__(cls, name: str) -> _Where:
        return super().__new__(cls, name)

    def __str__(self) -> str:
        return f"input {str.__repr__(self)}"

    def __format__(self, spec: str) -> str:
        return format(str(self), spec)


def _requested_outputs(raw_outputs: Any, parameters: dict[str, Any]) -> tuple[tuple[str, ...] | None, frozenset[str]]:
    all_binary = parameters.get("binary_data_output") is True
    if raw_outputs is None:
        return None, _ALL if all_binary else _NONE
    if type(raw_outputs) is not list:
        raise BadRequest("'outputs' must be a list of {'name': ...} objects.", hint=_HINT)
    names: list[str] = []
    binary: set[str] = set()
    for i, out in enumerate(raw_outputs):
        name = out.get("name") if type(out) is dict else None
        if type(name) is not str:
            raise BadRequest(f"outputs[{i}] has no 'name'.", hint=_HINT)
        names.append(name)
        params = out.get("parameters")
        if all_binary or (
            params is not None and _mapping(params, f"output {name!r} parameters").get("binary_data") is True
        ):
            binary.add(name)
    return tuple(names), frozenset(binary) if binary else _NONE


_ALL = frozenset({"*"})
_NONE: frozenset[str] = frozenset()


def _tabular_data(arrays: dict[str, np.ndarray], signature: Signature) -> Any:
    columns = signature.column_names
    known = set(columns)
    if len(arrays) == 1 and next(iter(arrays)) not in known:
        ((name, arr),) = arrays.items()
        if arr.ndim != 2:
            raise ValidationError(
                f"input {name!r} is not a column of the model and not a 2-D [rows, {len(columns)}] tensor "
                f"(shape {list(arr.shape)}).",
                hint=f"Send one input per column ({', '.join(columns)}) or one 2-D input with the columns in "
                "that order.",
            )
        return arr
    unknown = [n for n in arrays if n not in known]
    if unknown:
        raise ValidationError(
            f"Unknown input column {unknown[0]!r}.",
            hint=f"The model's columns are: {', '.join(columns)}.",
        )
    data: dict[str, np.ndarray] = {}
    for name, arr in arrays.items():
        if arr.ndim == 2 and arr.shape[1] == 1:
            arr = arr[:, 0]
        if arr.ndim != 1:
            raise ValidationError(
                f"input {name!r} has shape {list(arr.shape)}; a column input has shape [rows] or [rows, 1].",
                hint="Send one value per row for each column.",
            )
        data[name] = arr
    return data


_NUMERIC = {name: dtype for name, dtype in DATATYPES.items() if dtype.kind in "biuf"}
_TENSOR_KEYS = frozenset({"name", "shape", "datatype", "data"})
_REQUEST_KEYS = frozenset({"inputs", "outputs", "id"})


def _simple_request(doc: dict[str, Any], signature: Signature, max_depth: int) -> InferenceRequest | None:
    """The commonest request read in one pass, or ``None`` for anything else.

    One numeric JSON tensor that is the model's whole input (a 2-D input of a tabular model, or
    the single tensor of a tensor model), outputs named without parameters, no request
    parameters. It builds exactly what the general parser builds (the same ``np.asarray`` call on
    the same data); anything unusual or wrong returns ``None`` so that the general parser, the
    one source of error messages, handles it.

    Such a document's nesting depth is known from its shape: the object, ``inputs``, the tensor,
    then as many levels as the data array has dimensions (``outputs`` and ``id`` go no deeper).
    Within ``max_depth`` the body needs no scan for it; beyond, the general path refuses it.
    """
    inputs = doc.get("inputs")
    if type(inputs) is not list or len(inputs) != 1 or not doc.keys() <= _REQUEST_KEYS:
        return None
    arr = _simple_tensor(inputs[0], signature, max_depth - _TENSOR_DEPTH)
    if arr is None:
        return None
    raw_outputs = doc.get("outputs")
    outputs = None if raw_outputs is None else _simple_outputs(raw_outputs)
    request_id = doc.get("id")
    if (raw_outputs is not None and outputs is None) or (request_id is not None and type(request_id) is not str):
        return None
    return InferenceRequest(arr, outputs, request_id)


_TENSOR_DEPTH = 3
"""Nesting above a V2 input's ``data``: the request object, its ``inputs`` list, the tensor object."""


def _simple_tensor(tensor: Any, signature: Signature, max_data_depth: int) -> np.ndarray | None:
    if type(tensor) is not dict or tensor.keys() != _TENSOR_KEYS:
        return None
    name, shape, data, datatype = tensor["name"], tensor["shape"], tensor["data"], tensor["datatype"]
    dtype = _NUMERIC.get(datatype) if type(datatype) is str else None
    if dtype is None or type(name) is not str or type(shape) is not list or type(data) is not list:
        return None
    if signature.kind == "tabular":
        if len(shape) != 2 or name in signature.column_set:
            return None
    elif len(signature.tensors) != 1 or signature.tensors[0].name != name:
        return None
    size = 1
    for d in shape:
        if type(d) is not int or d < 0:
            return None
        size *= d
    try:
        arr = np.asarray(data, dtype=dtype)
    except (TypeError, ValueError, OverflowError):
        return None
    if arr.size != size or arr.ndim > max_data_depth:  # data is a list: one dimension per nesting level
        return None
    return arr if arr.shape == tuple(shape) else arr.reshape(shape)


def _simple_outputs(raw_outputs: Any) -> tuple[str, ...] | None:
    if type(raw_outputs) is not list:
        return None
    names = []
    for out in raw_outputs:
        if type(out) is not dict or len(out) != 1 or type(out.get("name")) is not str:
            return None
        names.append(out["name"])
    return tuple(names)


def parse_infer(body: Body, signature: Signature, max_depth: int) -> InferenceRequest:
    """Parse a V2 ``infer`` request body into an :class:`InferenceRequest`.

    Raises:
        BadRequest: Malformed JSON or structure.
        ValidationError: Datatype, shape or input names that do not fit the model.
    """
    header = body.data if body.json_length is None else body.data[: body.json_length]
    doc = load_json(header)
    if body.json_length is None and type(doc) is dict:
        simple = _simple_request(doc, signature, max_depth)
        if simple is not None:
            return simple  # within max_depth by its shape
    check_depth(header, max_depth)
    if not isinstance(doc, dict):
        raise BadRequest(f"The request must be a JSON object, got {type(doc).__name__}.", hint=_HINT)
    return _general_request(doc, body, signature)


def _general_request(doc: dict[str, Any], body: Body, signature: Signature) -> InferenceRequest:
    """Any request: every input, parameter and binary tensor, each checked with a message naming the problem."""
    parameters = _mapping(doc.get("parameters"), "'parameters'")
    arrays = _read_inputs(doc.get("inputs"), body)
    outputs, binary = _requested_outputs(doc.get("outputs"), parameters)
    if signature.kind == "tabular":
        data: Any = _tabular_data(arrays, signature)
    elif len(arrays) == 1 and len(signature.tensors) == 1 and signature.tensors[0].name in arrays:
        data = arrays[signature.tensors[0].name]  # the model's one tensor: no dict to unpack
    else:
        data = arrays
    return InferenceRequest(data, outputs, _string_or_none(doc.get("id"), "'id'"), binary, parameters)


def encode_infer(
    request: InferenceRequest,
    results: Mapping[str, np.ndarray],
    *,
    model: str,
    version: int,
    classes: tuple[Any, ...] | None,
) -> tuple[bytes, int | None]:
    """Encode a V2 ``infer`` response (see :class:`ResponseEncoder`, which servers keep per version)."""
    return ResponseEncoder(model, version, classes).encode(request, results)


class ResponseEncoder:
    """Encodes the V2 ``infer`` responses of one model version.

    JSON responses are assembled from byte strings: the parts that are the same for every
    response of this version (the model name and version, each output's name, datatype and
    classes) are encoded with orjson once; only shapes, data and the request id are encoded per
    response. The bytes are exactly those of the document ``{"model_name", "model_version",
    "outputs": [{"name", "datatype", "shape", ["parameters"], "data"}], ["id"]}`` encoded whole
    (tested). Responses with binary outputs are built as that document.

    Args:
        model: Model name.
        version: Model version.
        classes: Class labels, sent as ``parameters.classes`` of ``predict_proba``.
    """

    def __init__(self, model: str, version: int, classes: tuple[Any, ...] | None) -> None:
        self.model = model
        self.version = version
        self.classes = classes
        self._head = b'{"model_name":' + dumps(model) + b',"model_version":' + dumps(str(version)) + b',"outputs":['
        self._classes = None if classes is None else b',"parameters":' + dumps({"classes": list(classes)})
        self._prefixes: dict[tuple[str, np.dtype[Any]], bytes] = {}

    def encode(self, request: InferenceRequest, results: Mapping[str, np.ndarray]) -> tuple[bytes, int | None]:
        """The response body, and the JSON header length when binary outputs follow it (``None`` otherwise)."""
        if request.binary_outputs:
            return self._encode_document(request, results)
        parts = []
        for name, arr in results.items():
            key = (name, arr.dtype)
            prefix = self._prefixes.get(key)
            if prefix is None:
                prefix = b'{"name":' + dumps(name) + b',"datatype":' + dumps(datatype_of(arr.dtype)) + b',"shape":'
                if len(self._prefixes) < 64:  # a version has few outputs and dtypes
                    self._prefixes[key] = prefix
            middle = self._classes if name == "predict_proba" and self._classes is not None else b""
            parts.append(prefix + dumps(arr.shape) + middle + b',"data":' + dumps(as_list(arr.ravel())) + b"}")
        tail = b"]}" if request.id is None else b'],"id":' + dumps(request.id) + b"}"
        return self._head + b",".join(parts) + tail, None

    def _encode_document(
        self, request: InferenceRequest, results: Mapping[str, np.ndarray]
    ) -> tuple[bytes, int | None]:
        outputs: list[dict[str, Any]] = []
        tails: list[bytes] = []
        binary = request.binary_outputs
        for name, arr in results.items():
            out: dict[str, Any] = {"name": name, "datatype": datatype_of(arr.dtype), "shape": list(arr.shape)}
            if name == "predict_proba" and self.classes is not None:
                out["parameters"] = {"classes": list(self.classes)}
            if name in binary or "*" in binary:
                raw = array_to_binary(arr)
                out.setdefault("parameters", {})["binary_data_size"] = len(raw)
                tails.append(raw)
            else:
                out["data"] = as_list(arr.ravel())
            outputs.append(out)
        doc: dict[str, Any] = {"model_name": self.model, "model_version": str(self.version), "outputs": outputs}
        if request.id is not None:
            doc["id"] = request.id
        head = dumps(doc)
        if not tails:
            return head, None
        return head + b"".join(tails), len(head)


def model_metadata(name: str, versions: list[int], signature: Signature, flavor: str) -> dict[str, Any]:
    """The V2 model metadata document: name, versions, platform, inputs and outputs."""
    if signature.kind == "tabular":
        inputs = [{"name": c.name, "datatype": column_datatype(c.dtype), "shape": [-1]} for c in signature.columns]
    else:
        inputs = [
            {"name": t.name, "datatype": column_datatype(t.dtype), "shape": list(t.shape)} for t in signature.tensors
        ]
    outputs = [
        {"name": o.name, "datatype": column_datatype(o.dtype), "shape": list(o.shape)} for o in signature.outputs
    ]
    return {
        "name": name,
        "versions": [str(v) for v in versions],
        "platform": f"modelport-{flavor}",
        "inputs": inputs,
        "outputs": outputs,
    }
