"""Tensors on the wire: V2 datatypes, numpy conversion, binary-extension packing, and JSON encoding.

Shared by every protocol module. JSON is written with orjson, numpy arrays serialised natively
(``OPT_SERIALIZE_NUMPY``), so a response never goes through ``tolist()`` for numeric data.
"""

from __future__ import annotations

import math
import struct
from typing import Any

import numpy as np
import orjson

from modelport.core.errors import ValidationError

DATATYPES: dict[str, np.dtype[Any]] = {
    "BOOL": np.dtype(bool),
    "UINT8": np.dtype(np.uint8),
    "UINT16": np.dtype(np.uint16),
    "UINT32": np.dtype(np.uint32),
    "UINT64": np.dtype(np.uint64),
    "INT8": np.dtype(np.int8),
    "INT16": np.dtype(np.int16),
    "INT32": np.dtype(np.int32),
    "INT64": np.dtype(np.int64),
    "FP16": np.dtype(np.float16),
    "FP32": np.dtype(np.float32),
    "FP64": np.dtype(np.float64),
    "BYTES": np.dtype(object),
}
_BY_DTYPE = {dt: name for name, dt in DATATYPES.items() if name != "BYTES"}
_JSON_OPTIONS = orjson.OPT_SERIALIZE_NUMPY


class InferenceRequest:
    """A prediction request, whatever protocol it came in (built once per request: a plain slots class).

    Attributes:
        data: What :meth:`Predictor.coerce` accepts (dict of columns, records, rows, arrays).
        outputs: Outputs asked for; ``None`` means the protocol's default.
        id: The client's request id (V2 ``id``), echoed back.
        binary_outputs: V2 outputs to return in the binary extension.
        parameters: Request-level parameters as sent.
    """

    __slots__ = ("binary_outputs", "data", "id", "outputs", "parameters")

    def __init__(
        self,
        data: Any,
        outputs: tuple[str, ...] | None = None,
        id: str | None = None,
        binary_outputs: frozenset[str] = frozenset(),
        parameters: dict[str, Any] | None = None,
    ) -> None:
        self.data = data
        self.outputs = outputs
        self.id = id
        self.binary_outputs = binary_outputs
        self.parameters = parameters if parameters is not None else {}


def datatype_of(dtype: np.dtype[Any]) -> str:
    """The V2 datatype name of a numpy dtype (``BYTES`` for text and objects)."""
    return _BY_DTYPE.get(dtype, "BYTES")


def column_datatype(dtype_name: str) -> str:
    """The V2 datatype of a signature column dtype such as ``float64`` or ``object``."""
    try:
        return datatype_of(np.dtype(dtype_name))
    except TypeError:
        return "BYTES"


def dtype_of(datatype: Any, where: str) -> np.dtype[Any]:
    """The numpy dtype of a V2 datatype name, or :class:`ValidationError` naming the valid ones."""
    dtype = DATATYPES.get(datatype) if isinstance(datatype, str) else None
    if dtype is None:
        raise ValidationError(
            f"{where}: unknown datatype {datatype!r}.",
            hint=f"Use one of: {', '.join(DATATYPES)}.",
        )
    return dtype


def shape_of(shape: Any, where: str) -> tuple[int, ...]:
    """Validate a V2 ``shape`` (a list of non-negative ints)."""
    if type(shape) is list:
        for d in shape:  # a loop, not all(...): no generator per request
            if type(d) is not int or d < 0:  # bools are not dims
                break
        else:
            return tuple(shape)
    raise ValidationError(
        f"{where}: shape {shape!r} is not a list of non-negative integers.",
        hint="Give the tensor's shape, e.g. [rows, columns] or [rows].",
    )


def array_from_json(data: Any, datatype: str, shape: tuple[int, ...], where: str) -> np.ndarray:
    """Build the array of one V2 input from its JSON ``data`` (flat or nested, row-major)."""
    dtype = dtype_of(datatype, where)
    if not isinstance(data, list):
        data = [data]
    try:
        if dtype.kind == "O":
            arr = np.empty(len(data), dtype=object)
            arr[:] = data
            if any(isinstance(v, list) for v in data):
                arr = np.asarray(data, dtype=object)
        else:
            arr = np.asarray(data, dtype=dtype)
    except (TypeError, ValueError, OverflowError) as exc:
        raise ValidationError(
            f"{where}: data cannot be read as {datatype} ({str(exc).splitlines()[0]}).",
            hint="Make 'datatype' match the values sent, e.g. FP64 for decimals, BYTES for text.",
        ) from exc
    return _reshape(arr, shape, where)


def _reshape(arr: np.ndarray, shape: tuple[int, ...], where: str) -> np.ndarray:
    expected = math.prod(shape)
    if arr.size != expected:
        raise ValidationError(
            f"{where}: shape {list(shape)} holds {expected} values but data has {arr.size}.",
            hint="Send exactly one value per element of 'shape' (row-major, flattened or nested).",
        )
    return arr if arr.shape == shape else arr.reshape(shape)


def array_from_binary(raw: memoryview, datatype: str, shape: tuple[int, ...], where: str) -> np.ndarray:
    """Decode one tensor of the V2 binary extension (``BYTES``: 4-byte little-endian length prefixes)."""
    dtype = dtype_of(datatype, where)
    if dtype.kind != "O":
        if len(raw) % dtype.itemsize:
            raise ValidationError(
                f"{where}: {len(raw)} binary bytes are not a whole number of {datatype} values.",
                hint="Set binary_data_size to the byte length of the tensor.",
            )
        return _reshape(np.frombuffer(raw, dtype=dtype.newbyteorder("<")), shape, where)
    items: list[bytes] = []
    pos = 0
    while pos < len(raw):
        if pos + 4 > len(raw):
            raise ValidationError(f"{where}: truncated BYTES element.", hint="Each element is a 4-byte length + bytes.")
        (length,) = struct.unpack_from("<I", raw, pos)
        items.append(bytes(raw[pos + 4 : pos + 4 + length]))
        pos += 4 + length
    arr = np.empty(len(items), dtype=object)
    arr[:] = [_decode(b) for b in items]
    return _reshape(arr, shape, where)


def _decode(value: bytes) -> str | bytes:
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return value


def array_to_binary(arr: np.ndarray) -> bytes:
    """Encode ``arr`` for the V2 binary extension (little-endian; ``BYTES`` length-prefixed)."""
    if arr.dtype.kind in "OUS":
        parts = []
        for item in arr.ravel():
            raw = item if isinstance(item, bytes) else str(item).encode("utf-8")
            parts.append(struct.pack("<I", len(raw)) + raw)
        return b"".join(parts)
    return np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder("<")).tobytes()


def wire_array(arr: np.ndarray) -> np.ndarray:
    """``arr`` in a form orjson serialises natively (text and objects as an object array)."""
    if arr.dtype.kind in "US":
        return arr.astype(object)
    return arr


def _default(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, float | int | str | bool) or value is None:
        return value
    return str(value)


def dumps(value: Any) -> bytes:
    """Serialise a response body (numpy arrays natively; objects via ``tolist``)."""
    return orjson.dumps(value, default=_default, option=_JSON_OPTIONS)


def as_list(arr: np.ndarray) -> Any:
    """An array ready for :func:`dumps`: numeric arrays as they are, others as lists."""
    if arr.dtype.kind in "biuf" and arr.flags.c_contiguous:
        return arr
    return arr.tolist()
