"""PyTorch models to ONNX, with ``torch.onnx.export``'s TorchScript-based exporter.

The torch.export-based exporter needs ``onnxscript``, which modelport does not require; the
TorchScript-based one ships with torch and handles the programs and TorchScript modules the
torch flavor loads. A loaded ``torch.export`` program cannot switch to eval mode (it always is
in it), so it is wrapped in a module whose ``train()`` does nothing. The batch dimension stays
free; the example input is two rows of the reference sample (or zeros).
"""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from modelport.core.errors import Unsupported
from modelport.core.types import Signature
from modelport.edge.spec import EdgeInput, EdgeSpec, FeedDtype

INPUT_NAME = "input"
OUTPUT_NAME = "output"

_SERVE_NATIVE = "or serve the native bundle (modelport serve) instead of exporting it"


def convert_torch_model(
    module: Any, signature: Signature, *, example: np.ndarray | None, float_dtype: str, opset: int
) -> tuple[Any, EdgeSpec, str]:
    """Convert a loaded PyTorch module (program module or TorchScript) to ONNX.

    Args:
        module: The callable the torch flavor loaded.
        signature: The bundle's signature: one tensor, or numeric columns stacked in order.
        example: A few rows of real input, or ``None`` for zeros.
        float_dtype: ``float32`` or ``float64``, the dtype the model computes in.
        opset: The ONNX opset to target.

    Raises:
        Unsupported: The signature is not one tensor or numeric columns, or the exporter failed.
    """
    import onnx
    import torch

    layout, feed = _input(signature, float_dtype)
    array = _example(signature, example, float_dtype)
    wrapped = _wrap(torch, module)
    try:
        with warnings.catch_warnings(), tempfile.TemporaryDirectory(prefix="modelport-torch-") as tmp:
            warnings.simplefilter("ignore")  # the TorchScript exporter announces its own deprecation
            target = Path(tmp) / "model.onnx"
            torch.onnx.export(
                wrapped,
                (torch.from_numpy(array),),
                target,
                dynamo=False,
                input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME],
                dynamic_axes={INPUT_NAME: {0: "N"}, OUTPUT_NAME: {0: "N"}},
                opset_version=opset,
            )
            data = target.read_bytes()
    except Exception as exc:  # the exporter raises many unrelated classes
        text = str(exc).strip()
        first = text.splitlines()[0][:200] if text else type(exc).__name__
        raise Unsupported(
            f"Cannot export this PyTorch model ({type(module).__name__}) to ONNX: {first}",
            hint=f"Use operators ONNX supports in forward() (no data-dependent control flow), {_SERVE_NATIVE}.",
        ) from exc
    onx = onnx.load_model_from_string(data)
    spec = EdgeSpec(layout=layout, inputs=(feed,), task="tensor", value_output=OUTPUT_NAME)
    return onx, spec, f"torch {type(module).__name__}"


def _input(signature: Signature, float_dtype: str) -> tuple[Any, EdgeInput]:
    dtype: FeedDtype = "float64" if float_dtype == "float64" else "float32"
    if signature.kind == "tensor":
        if len(signature.tensors) != 1:
            raise Unsupported(
                f"Cannot export a PyTorch model taking {len(signature.tensors)} tensors.",
                hint=f"Export models with one input tensor, {_SERVE_NATIVE}.",
            )
        tensor = signature.tensors[0]
        if tensor.dtype.startswith(("int", "uint")):
            dtype = "int64"
        return "tensors", EdgeInput(INPUT_NAME, dtype, (tensor.name,))
    text = [c.name for c in signature.columns if c.type not in ("float", "int", "bool")]
    if text:
        raise Unsupported(
            f"Cannot export a PyTorch model fed column {text[0]!r}, which is not numeric.",
            hint=f"Encode the column as numbers before the model, {_SERVE_NATIVE}.",
        )
    return "matrix", EdgeInput(INPUT_NAME, dtype, signature.column_names)


def _example(signature: Signature, example: np.ndarray | None, float_dtype: str) -> np.ndarray:
    if example is not None and len(example) >= 1:
        rows = np.asarray(example)[:2]
        if rows.shape[0] == 1:  # two rows keep the batch dimension free in the trace
            rows = np.concatenate([rows, rows])
    elif signature.kind == "tensor":
        rows = np.zeros((2, *[max(d, 1) for d in signature.tensors[0].shape[1:]]))
    else:
        rows = np.zeros((2, len(signature.columns)))
    integer = signature.kind == "tensor" and signature.tensors[0].dtype.startswith(("int", "uint"))
    if integer and rows.dtype.kind in "iu":
        return np.ascontiguousarray(rows.astype(np.int64))
    return np.ascontiguousarray(rows.astype(np.dtype(float_dtype)))


def _wrap(torch: Any, module: Any) -> Any:
    """``module`` inside an ``nn.Module`` whose ``train()`` is a no-op (programs refuse mode switches)."""

    class _Inference(torch.nn.Module):  # type: ignore[misc]
        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, x: Any) -> Any:
            return self.inner(x)

        def train(self, mode: bool = True) -> Any:
            return self

    return _Inference(module)
