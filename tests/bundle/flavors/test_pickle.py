"""The pickle flavor: only with trust at save and load, hash-checked on the bytes unpickled, warned every time."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from modelport.bundle.flavors.base import PickleLoadWarning
from modelport.bundle.flavors.pickle import PickleFlavor
from modelport.bundle.hashing import sha256_bytes
from modelport.bundle.io import load_bundle, save_bundle
from modelport.core.errors import IntegrityError, UntrustedArtifact
from modelport.testing import Tripwire, check_flavor


@pytest.fixture
def model(iris: Any) -> Any:
    from sklearn.linear_model import LogisticRegression

    x, y = iris
    return LogisticRegression(max_iter=300).fit(x, y)


def test_battery_with_trust(tmp_path: Path, model: Any, iris: Any) -> None:
    x, _ = iris
    loaded = check_flavor(model, x[:10], tmp_path, flavor="pickle", trusted_pickle=True)
    assert loaded.manifest.flavor == "pickle"
    assert [a.path for a in loaded.manifest.artifacts if a.pickle] == ["artifacts/model.pkl"]
    assert "scikit-learn" in loaded.manifest.framework


def test_save_without_trust_is_refused(tmp_path: Path, model: Any, iris: Any) -> None:
    x, _ = iris
    with pytest.raises(UntrustedArtifact, match=r"can run arbitrary code") as info:
        save_bundle(model, tmp_path / "b", sample_input=x[:5], flavor="pickle")
    assert info.value.hint is not None
    assert "trusted_pickle=True" in info.value.hint
    assert not (tmp_path / "b").exists()


def test_load_without_trust_never_opens_the_pickle(tmp_path: Path, model: Any, iris: Any) -> None:
    x, _ = iris
    save_bundle(model, tmp_path / "b", sample_input=x[:5], flavor="pickle", trusted_pickle=True)
    marker = tmp_path / "pwned"
    flavor = PickleFlavor()
    (tmp_path / "evil").mkdir()
    payload = pickle.dumps(Tripwire(marker))
    (tmp_path / "evil" / "model.pkl").write_bytes(payload)
    with pytest.raises(UntrustedArtifact):
        flavor.load(tmp_path / "evil", {"file": "model.pkl", "sha256": sha256_bytes(payload)})
    assert not marker.exists()
    with pytest.raises(UntrustedArtifact, match=r"artifacts/model\.pkl"):
        load_bundle(tmp_path / "b")


def test_tripwire_really_fires_when_trusted(tmp_path: Path) -> None:
    """Guards the refusal tests above: the payload does run when unpickled."""
    marker = tmp_path / "pwned"
    payload = pickle.dumps(Tripwire(marker))
    (tmp_path / "model.pkl").write_bytes(payload)
    with pytest.warns(PickleLoadWarning):
        PickleFlavor().load(tmp_path, {"file": "model.pkl", "sha256": sha256_bytes(payload)}, trusted_pickle=True)
    assert marker.exists()


def test_bytes_are_rechecked_before_unpickling(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    (tmp_path / "model.pkl").write_bytes(pickle.dumps(Tripwire(marker)))
    with pytest.raises(IntegrityError, match=r"does not match the sha256"):
        PickleFlavor().load(tmp_path, {"file": "model.pkl", "sha256": "0" * 64}, trusted_pickle=True)
    assert not marker.exists()


def test_every_load_warns(tmp_path: Path, model: Any, iris: Any) -> None:
    x, _ = iris
    save_bundle(model, tmp_path / "b", sample_input=x[:5], flavor="pickle", trusted_pickle=True)
    for _ in range(2):
        with pytest.warns(PickleLoadWarning, match=r"model.pkl"):
            loaded = load_bundle(tmp_path / "b", trusted_pickle=True)
        np.testing.assert_array_equal(loaded.adapter.predict(x), model.predict(x))


def test_unpicklable_model_is_unsupported(tmp_path: Path, iris: Any) -> None:
    from modelport.core.errors import Unsupported

    class Local:
        def predict(self, data: Any) -> np.ndarray:
            return np.zeros(len(data))

    x, _ = iris
    with pytest.raises(Unsupported, match=r"cannot be pickled"):
        save_bundle(Local(), tmp_path / "b", sample_input=x[:5], flavor="pickle", trusted_pickle=True)
