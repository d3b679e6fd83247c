"""Running an exported ONNX model in modelport: an ONNX Runtime session fed through its spec.

:class:`EdgeRunner` reads the :class:`~modelport.edge.spec.EdgeSpec` stored in the model's
metadata and answers like the bundle's own adapter (it implements the ``ModelAdapter``
protocol), which is what the parity check and the timings compare. The standalone
``predict.py`` does the same without pandas or modelport.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from modelport.bundle.flavors.base import InputFormat, ModelInput
from modelport.core.errors import IntegrityError, MissingDependency, Unsupported, ValidationError
from modelport.edge.graph import parse_model, read_spec
from modelport.edge.spec import EdgeSpec


def open_session(model_bytes: bytes, *, source: str, threads: int = 1) -> Any:
    """An ONNX Runtime CPU session over ``model_bytes``, checked first.

    Raises:
        IntegrityError: The bytes are not a valid ONNX model, or ONNX Runtime cannot load them.
    """
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise MissingDependency.for_extra("onnxruntime", "onnx") from exc
    parse_model(model_bytes, source=source)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    try:
        return ort.InferenceSession(model_bytes, sess_options=options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime's errors derive from Exception only
        text = str(exc).strip()
        first = text.splitlines()[0][:200] if text else type(exc).__name__
        raise IntegrityError(
            f"ONNX Runtime cannot load {source}: {first}",
            hint="Export the model again, or install a newer onnxruntime for its opset.",
        ) from exc


class EdgeRunner:
    """An exported model, callable like the bundle's adapter.

    Args:
        session: An ``onnxruntime.InferenceSession``.
        spec: How to feed it.
    """

    def __init__(self, session: Any, spec: EdgeSpec) -> None:
        self.session = session
        self.spec = spec
        self.classes: tuple[Any, ...] | None = spec.classes
        self.has_proba = spec.proba_output is not None
        self.input_format: InputFormat = "frame" if spec.layout != "tensors" else "array"

    @classmethod
    def from_bytes(cls, model_bytes: bytes, *, source: str = "the exported model", threads: int = 1) -> EdgeRunner:
        """Open ``model_bytes`` (an export carrying its spec in the metadata).

        Raises:
            IntegrityError: Not a valid ONNX model, or one without modelport's description.
        """
        session = open_session(model_bytes, source=source, threads=threads)
        return cls(session, read_spec(session.get_modelmeta().custom_metadata_map, source=source))

    def feed(self, data: ModelInput) -> dict[str, np.ndarray]:
        """The ONNX feed for ``data`` (see :meth:`EdgeSpec.feed`)."""
        return self.spec.feed(data)

    def run_feed(self, feed: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray | None]:
        """``(predict, predict_proba)`` for a ready feed."""
        names = list(self.spec.output_names)
        try:
            results = self.session.run(names, feed)
        except Exception as exc:  # onnxruntime's errors derive from Exception only
            text = str(exc).strip()
            raise ValidationError(
                f"ONNX Runtime rejected the input: {text.splitlines()[0][:200] if text else type(exc).__name__}",
                hint="Check the input against the model's signature.",
            ) from exc
        return self.spec.outputs(dict(zip(names, results, strict=True)))

    def run(self, data: ModelInput) -> tuple[np.ndarray, np.ndarray | None]:
        """``(predict, predict_proba)`` for ``data``."""
        return self.run_feed(self.feed(data))

    def predict(self, data: ModelInput) -> np.ndarray:
        """Labels, values or the output tensor, one per row."""
        return self.run(data)[0]

    def predict_proba(self, data: ModelInput) -> np.ndarray:
        """Class probabilities, shape ``(rows, len(classes))``."""
        proba = self.run(data)[1]
        if proba is None:
            raise Unsupported("This exported model has no probabilities.", hint="Call predict instead.")
        return proba
