"""The check_flavor battery itself: it passes a sound flavor and catches broken ones."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from modelport.bundle.flavors.base import ModelAdapter, SavedArtifacts
from modelport.bundle.flavors.pickle import ObjectAdapter
from modelport.bundle.flavors.sklearn import SklearnFlavor
from modelport.bundle.flavors.table import FlavorTable
from modelport.testing import check_flavor


class _OffByOne(ObjectAdapter):
    def predict(self, data: Any) -> np.ndarray:
        return super().predict(data) + 1


class DriftingFlavor(SklearnFlavor):
    """Loads a model that predicts something else than what was saved."""

    name = "drifting"

    def load(self, artifacts_dir: Path, options: dict[str, Any], *, trusted_pickle: bool = False) -> ModelAdapter:
        return _OffByOne(super().load(artifacts_dir, options).model)  # type: ignore[attr-defined]


class RecklessFlavor:
    """Unpickles without asking for trust: the battery must catch it running the payload."""

    name = "reckless"
    extra = "reckless"

    def detect(self, model: object) -> bool:
        return False

    def adapter(self, model: Any) -> ModelAdapter:
        return ObjectAdapter(model)

    def save(
        self, model: Any, artifacts_dir: Path, *, trusted_pickle: bool = False, sample_input: Any = None
    ) -> SavedArtifacts:
        (artifacts_dir / "model.pkl").write_bytes(pickle.dumps(model))
        return SavedArtifacts(files=("model.pkl",))

    def load(self, artifacts_dir: Path, options: dict[str, Any], *, trusted_pickle: bool = False) -> ModelAdapter:
        return ObjectAdapter(pickle.loads((artifacts_dir / "model.pkl").read_bytes()))


@pytest.fixture
def ridge(iris: Any) -> tuple[Any, np.ndarray]:
    from sklearn.linear_model import Ridge

    x, _ = iris
    return Ridge().fit(x[:, 1:], x[:, 0]), x[:, 1:]


def test_sound_flavor_passes(tmp_path: Path, ridge: Any) -> None:
    model, x = ridge
    loaded = check_flavor(model, x[:10], tmp_path)
    assert loaded.manifest.name == "checked"


def test_catches_predictions_that_change_after_load(tmp_path: Path, ridge: Any) -> None:
    model, x = ridge
    table = FlavorTable.default(entry_points=False).with_flavor("drifting", DriftingFlavor())
    with pytest.raises(AssertionError, match="identical predict after load"):
        check_flavor(model, x[:10], tmp_path, flavor="drifting", flavors=table)


def test_catches_a_flavor_that_unpickles_without_trust(tmp_path: Path, ridge: Any) -> None:
    model, x = ridge
    table = FlavorTable.default(entry_points=False).with_flavor("reckless", RecklessFlavor())
    with pytest.raises(AssertionError, match="never to run"):
        check_flavor(model, x[:10], tmp_path, flavor="reckless", flavors=table)
