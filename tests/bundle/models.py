"""Importable model classes for the python-flavor tests (a bundle names them by import path)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from modelport.bundle.flavors.base import ModelAdapter
from modelport.bundle.io import load_bundle, save_bundle


class Ensemble:
    """A composition: two sub-models saved as their own bundles, averaged, plus post-processing."""

    classes = ("churn", "stay")

    def __init__(self, first: Any = None, second: Any = None, sample: pd.DataFrame | None = None) -> None:
        self.first, self.second, self.sample = first, second, sample
        self.loaded: tuple[ModelAdapter, ModelAdapter] | None = None

    def save(self, artifacts_dir: Path) -> None:
        save_bundle(self.first, artifacts_dir / "first", name="first", sample_input=self.sample)
        save_bundle(self.second, artifacts_dir / "second", name="second", sample_input=self.sample)
        (artifacts_dir / "threshold.txt").write_text("0.5")

    def load(self, artifacts_dir: Path) -> None:
        self.loaded = (load_bundle(artifacts_dir / "first").adapter, load_bundle(artifacts_dir / "second").adapter)
        self.threshold = float((artifacts_dir / "threshold.txt").read_text())

    def _models(self) -> tuple[Any, Any]:
        return self.loaded if self.loaded is not None else (self.first, self.second)

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        first, second = self._models()
        return (np.asarray(first.predict_proba(frame)) + np.asarray(second.predict_proba(frame))) / 2

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        threshold = getattr(self, "threshold", 0.5)
        return np.where(self.predict_proba(frame)[:, 0] >= threshold, "churn", "stay")


class Doubler:
    """Stateless, loaded through a classmethod; takes an ndarray."""

    input_format = "array"

    @classmethod
    def load(cls, artifacts_dir: Path) -> Doubler:
        return cls()

    def predict(self, data: np.ndarray) -> np.ndarray:
        return np.asarray(data, dtype="float64").sum(axis=1) * 2


class NoPredict:
    """Has ``load`` but no ``predict``: never a python-flavor model."""

    def load(self, artifacts_dir: Path) -> None:
        return None


def shout(x: Any) -> Any:
    """A user function, unknown to the skops allow-list."""
    return x


class NeedsArgs:
    """An instance ``load`` but a constructor that needs an argument."""

    def __init__(self, scale: float) -> None:
        self.scale = scale

    def load(self, artifacts_dir: Path) -> None:
        return None

    def predict(self, data: np.ndarray) -> np.ndarray:
        return np.asarray(data).sum(axis=1) * self.scale


class LoadsNothing:
    """A ``load`` classmethod that forgets to return the instance."""

    @classmethod
    def load(cls, artifacts_dir: Path) -> None:
        return None

    def predict(self, data: np.ndarray) -> np.ndarray:
        return np.zeros(len(data))
