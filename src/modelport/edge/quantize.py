"""Shrinking an exported model: dynamic int8 quantization and float16 conversion.

``int8`` runs ONNX Runtime's dynamic quantization: the weights of ``MatMul`` and ``Gemm`` nodes
(linear layers, MLPs) are stored as int8 and activations are quantized on the fly
(``DynamicQuantizeLinear`` + ``MatMulInteger``, the integer-operator form ONNX Runtime runs
fastest on CPUs; the QDQ form only pays off with static calibration on accelerators). ``fp16``
stores float tensors as float16 with float32 inputs and outputs kept, leaving the ``ai.onnx.ml``
operators that have no float16 kernels in float32. Tree ensembles are never quantized: their
parameters are split thresholds and leaf values, not weight matrices, and rounding a threshold
moves every row near it to another leaf. When nothing can be quantized the result says why and
the float model is kept.
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from modelport.core.errors import IntegrityError, MissingDependency, Unsupported
from modelport.edge.convert import Conversion
from modelport.edge.graph import op_types, parse_model
from modelport.edge.runner import open_session

QuantizeMode = Literal["int8", "fp16"]
QUANTIZE_MODES: tuple[QuantizeMode, ...] = ("int8", "fp16")

TREE_REASON = (
    "tree ensembles are not quantized: their parameters are split thresholds and leaf values, not weight "
    "matrices, so int8/fp16 kernels do not apply and rounding a threshold would send rows to other leaves; "
    "the float model is exported (trees are already compact and fast in ONNX Runtime)"
)

_INT8_OPS = frozenset({"MatMulInteger", "DynamicQuantizeLinear", "QLinearMatMul", "ConvInteger"})


@dataclass(frozen=True)
class Quantized:
    """The outcome of :func:`quantize`.

    Attributes:
        mode: What was asked: ``int8`` or ``fp16``.
        model_bytes: The quantized model, or ``None`` when quantization was skipped.
        note: What was done, or why it was skipped.
    """

    mode: QuantizeMode
    model_bytes: bytes | None
    note: str

    @property
    def applied(self) -> bool:
        """Whether a quantized model was produced."""
        return self.model_bytes is not None


def quantize(conversion: Conversion, mode: str) -> Quantized:
    """Quantize ``conversion``'s model per ``mode``.

    Raises:
        Unsupported: ``mode`` is not ``int8`` or ``fp16``.
    """
    if mode not in QUANTIZE_MODES:
        raise Unsupported(f"Unknown quantization {mode!r}.", hint=f"Use one of {', '.join(QUANTIZE_MODES)}, or none.")
    if conversion.tree_ensemble:
        return Quantized(mode="int8" if mode == "int8" else "fp16", model_bytes=None, note=TREE_REASON)
    if mode == "int8":
        return _int8(conversion)
    return _fp16(conversion)


def _int8(conversion: Conversion) -> Quantized:
    try:
        from onnxruntime.quantization import QuantType, quantize_dynamic
    except ImportError as exc:
        raise MissingDependency.for_extra("onnxruntime", "onnx") from exc
    model = parse_model(conversion.model_bytes, source="the exported model")
    weighted = [n for n in model.graph.node if n.op_type in ("MatMul", "Gemm")]
    if not weighted:
        present = ", ".join(sorted(op_types(model))[:6])
        return Quantized(
            mode="int8",
            model_bytes=None,
            note=f"int8 skipped: the model has no MatMul/Gemm weights to quantize (it uses {present}); "
            "the float model is exported",
        )
    with tempfile.TemporaryDirectory(prefix="modelport-int8-") as tmp, _quiet_quantizer():
        target = Path(tmp) / "model.int8.onnx"
        quantize_dynamic(model, target, weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul", "Gemm"])
        data = target.read_bytes()
    quantized = parse_model(data, source="the int8 model")
    done = sum(1 for n in quantized.graph.node if n.op_type in ("MatMulInteger", "QLinearMatMul"))
    if not op_types(quantized) & _INT8_OPS:
        return Quantized(
            mode="int8",
            model_bytes=None,
            note="int8 skipped: no weight was constant, so nothing could be quantized; the float model is exported",
        )
    _copy_metadata(model, quantized)
    _raw_initializers(quantized)
    return Quantized(
        mode="int8",
        model_bytes=quantized.SerializeToString(),
        note=f"dynamic int8: {done} of {len(weighted)} MatMul/Gemm weight(s) stored as int8",
    )


def _fp16(conversion: Conversion) -> Quantized:
    try:
        from onnxconverter_common import float16
    except ImportError as exc:
        raise MissingDependency(
            "fp16 export needs the 'onnxconverter-common' package.",
            hint="Install it with: pip install 'modelport[onnx]'",
        ) from exc
    model = parse_model(conversion.model_bytes, source="the exported model")
    if conversion.precision == "float64":
        return Quantized(
            mode="fp16",
            model_bytes=None,
            note="fp16 skipped: the model computes in float64 to match the native one; the float model is exported",
        )
    own_casts = {n.name for n in model.graph.node if n.op_type == "Cast"}
    with _quiet_quantizer():
        half = float16.convert_float_to_float16(model, keep_io_types=True)
    _retarget_casts(half, own_casts)
    halves = sum(1 for t in half.graph.initializer if t.data_type == 10)  # TensorProto.FLOAT16
    if not halves:
        return Quantized(
            mode="fp16",
            model_bytes=None,
            note="fp16 skipped: the model's parameters live in operators without float16 kernels; "
            "the float model is exported",
        )
    _copy_metadata(model, half)
    _raw_initializers(half)
    data = half.SerializeToString()
    try:
        open_session(data, source="the fp16 model")
    except IntegrityError as exc:
        return Quantized(
            mode="fp16", model_bytes=None, note=f"fp16 skipped: {exc.message}; the float model is exported"
        )
    return Quantized(mode="fp16", model_bytes=data, note=f"fp16: {halves} weight tensor(s) stored as float16")


def _retarget_casts(model: Any, own_casts: set[str]) -> None:
    """Make the model's own float32 casts produce float16, as the converter re-typed their outputs.

    A cast the model already had (skl2onnx starts with one) keeps ``to=FLOAT`` after conversion
    while everything downstream now takes float16; the casts the converter added are right.
    """
    from onnx import TensorProto

    for node in model.graph.node:
        if node.op_type != "Cast" or node.name not in own_casts:
            continue
        for attribute in node.attribute:
            if attribute.name == "to" and attribute.i == TensorProto.FLOAT:
                attribute.i = TensorProto.FLOAT16


def _raw_initializers(model: Any) -> None:
    """Store every numeric initializer as raw bytes (float16 kept in ``int32_data`` takes up to 3 bytes a value)."""
    from onnx import numpy_helper

    for index, tensor in enumerate(model.graph.initializer):
        if tensor.raw_data or tensor.data_type in (0, 8):  # undefined or strings
            continue
        model.graph.initializer[index].CopyFrom(numpy_helper.from_array(numpy_helper.to_array(tensor), tensor.name))


def _copy_metadata(source: Any, target: Any) -> None:
    keys = {p.key for p in target.metadata_props}
    for prop in source.metadata_props:
        if prop.key not in keys:
            target.metadata_props.add().CopyFrom(prop)


@contextlib.contextmanager
def _quiet_quantizer() -> Iterator[None]:
    """Drop the advice the quantizers log (below ERROR) or warn while they run."""
    keep_errors = _KeepErrors()
    root = logging.getLogger()
    root.addFilter(keep_errors)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # float16 warns for every tiny weight it rounds to its minimum
            yield
    finally:
        root.removeFilter(keep_errors)


class _KeepErrors(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.ERROR
