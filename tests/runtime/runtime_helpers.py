"""Runtime test helpers: a hand-written adapter around a tiny model, and a LoadedBundle built in memory."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from modelport.bundle.flavors.base import InputFormat, ModelInput
from modelport.bundle.loaded import LoadedBundle
from modelport.bundle.manifest import Manifest, Provenance
from modelport.core.types import ColumnSpec, Signature


class SklearnLikeAdapter:
    """A ModelAdapter around any fitted estimator, taking the input format it is told to."""

    def __init__(self, model: Any, input_format: InputFormat = "frame") -> None:
        self.model = model
        self.input_format = input_format
        self.classes = tuple(model.classes_) if hasattr(model, "classes_") else None
        self.has_proba = hasattr(model, "predict_proba")
        self.seen: list[ModelInput] = []

    def _as_frame(self, data: ModelInput) -> Any:
        self.seen.append(data)
        if isinstance(data, dict):
            return np.hstack([np.asarray(v, dtype=np.float64) for v in data.values()])
        return data

    def predict(self, data: ModelInput) -> np.ndarray:
        return np.asarray(self.model.predict(self._as_frame(data)))

    def predict_proba(self, data: ModelInput) -> np.ndarray:
        return np.asarray(self.model.predict_proba(self._as_frame(data)))


def make_bundle(adapter: Any, signature: Signature, *, name: str = "tiny", version: int | None = 3) -> LoadedBundle:
    """A LoadedBundle assembled in memory (no files)."""
    manifest = Manifest(
        name=name,
        version=version,
        flavor="sklearn",
        python_version="3.11",
        signature=signature,
        provenance=Provenance(user="tester", host="localhost", created_at=datetime(2024, 1, 1, tzinfo=UTC)),
    )
    return LoadedBundle(path=Path("/nonexistent"), manifest=manifest, adapter=adapter)


def float_signature(names: list[str]) -> Signature:
    return Signature(kind="tabular", columns=tuple(ColumnSpec(name=n, type="float", dtype="float64") for n in names))
