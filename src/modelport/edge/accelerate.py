"""The serving fast path: a bundle's model run by ONNX Runtime when that is provably the same model.

:func:`try_accelerate` converts a scikit-learn, XGBoost or LightGBM bundle to ONNX and wraps it
in the ``onnx`` flavor's adapter, but only when the converted model gives exactly the native
labels, and probabilities and values within 1e-5, on the bundle's reference sample. Otherwise
it says why, so the caller can announce "native (reason)" at start-up; :func:`accelerate` is the
same decision in the ``(adapter, note) | None`` shape the server and batch layers take.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from modelport.bundle.flavors.base import ModelAdapter
from modelport.bundle.flavors.onnx import OnnxAdapter
from modelport.bundle.io import read_reference_sample
from modelport.bundle.loaded import LoadedBundle
from modelport.core.errors import ModelportError
from modelport.edge.convert import Conversion
from modelport.edge.export import faithful_conversion
from modelport.edge.package import feed_format
from modelport.edge.parity import ParityError, ParityThresholds

ACCELERATED_FLAVORS = ("sklearn", "xgboost", "lightgbm")
"""Flavors the fast path converts; others (ONNX already, PyTorch, Python) are served as they are."""

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Acceleration:
    """The fast-path decision for one bundle.

    Attributes:
        adapter: The ONNX Runtime adapter to serve with, or ``None`` to serve natively.
        note: ``onnxruntime (...)`` when accelerated, else the reason it is not.
    """

    adapter: ModelAdapter | None
    note: str

    @property
    def accelerated(self) -> bool:
        """Whether :attr:`adapter` is set."""
        return self.adapter is not None


def try_accelerate(bundle: LoadedBundle) -> Acceleration:
    """Convert ``bundle`` to an ONNX Runtime adapter if that keeps its answers; say why not otherwise.

    Never raises for a model that cannot be accelerated: the native adapter is always a valid answer.
    """
    flavor = bundle.manifest.flavor
    if flavor not in ACCELERATED_FLAVORS:
        return Acceleration(None, f"flavor {flavor!r} is served natively")
    sample = read_reference_sample(bundle.path)
    if sample is None:
        return Acceleration(None, "the bundle has no reference sample to check ONNX parity on")
    built: list[ModelAdapter] = []

    def build(conversion: Conversion) -> ModelAdapter:
        built.append(_adapter(bundle, conversion))
        return built[-1]

    try:
        conversion, _, _ = faithful_conversion(
            bundle, [("reference sample", sample)], thresholds=ParityThresholds.exact(), adapter=build
        )
    except ParityError as exc:
        report = next((r for r in exc.reports if not r.passed), None)
        detail = f" ({'; '.join(report.failures)})" if report else ""
        return Acceleration(None, f"ONNX parity failed on the reference sample{detail}")
    except ModelportError as exc:
        return Acceleration(None, f"ONNX conversion unavailable: {exc.message}")
    except Exception as exc:  # a converter bug must never stop serving: the native model is always right
        return Acceleration(None, f"ONNX conversion failed: {type(exc).__name__}: {str(exc)[:200]}")
    return Acceleration(built[-1], f"onnxruntime ({conversion.description}, {conversion.precision})")


def accelerate(bundle: LoadedBundle) -> tuple[ModelAdapter, str] | None:
    """``(adapter, note)`` for the server/batch fast path, or ``None`` (the reason is logged at INFO).

    Example:
        >>> fast = accelerate(load_bundle("bundles/churn"))  # doctest: +SKIP
        >>> Predictor(bundle, adapter=fast[0], accelerated=fast[1]) if fast else Predictor(bundle)  # doctest: +SKIP
    """
    decision = try_accelerate(bundle)
    if decision.adapter is None:
        _log.info("model %s served natively: %s", bundle.manifest.name, decision.note)
        return None
    return decision.adapter, decision.note


def _adapter(bundle: LoadedBundle, conversion: Conversion) -> ModelAdapter:
    input_format, column_names = feed_format(conversion.spec, bundle.manifest.signature.column_names)
    return OnnxAdapter.from_bytes(
        conversion.model_bytes,
        classes=conversion.spec.classes,
        input_format=input_format,
        column_names=column_names,
    )
