"""The python flavor: composition of models, import-path loading, and shipped code behind the trust flag."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bundle.models import Doubler, Ensemble
from modelport.bundle.flavors.base import PickleLoadWarning
from modelport.bundle.io import load_bundle, save_bundle
from modelport.bundle.manifest import MANIFEST_FILE, read_manifest
from modelport.core.errors import IntegrityError, MissingDependency, Unsupported, UntrustedArtifact
from modelport.testing import check_flavor


def test_composition_of_two_bundled_models(tmp_path: Path, customers: Any) -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.tree import DecisionTreeClassifier

    frame, target = customers
    features = frame[["age", "income"]].fillna(0)
    ensemble = Ensemble(
        LogisticRegression(max_iter=500).fit(features, target),
        DecisionTreeClassifier(max_depth=3, random_state=0).fit(features, target),
        features.head(10),
    )
    loaded = check_flavor(ensemble, features.head(25), tmp_path)
    manifest = loaded.manifest
    assert manifest.flavor_options["module"] == "bundle.models"
    assert manifest.flavor_options["qualname"] == "Ensemble"
    assert "code" not in manifest.flavor_options
    paths = {a.path for a in manifest.artifacts}
    assert {"artifacts/model/first/artifacts/model.skops", "artifacts/model/threshold.txt"} <= paths
    assert any(r.startswith("scikit-learn==") for r in manifest.requirements)  # from the sub-bundles
    assert manifest.signature.classes == ("churn", "stay")
    assert [o.name for o in manifest.signature.outputs] == ["predict", "predict_proba"]


def test_tampered_sub_model_is_refused(tmp_path: Path, customers: Any) -> None:
    from sklearn.linear_model import LogisticRegression

    frame, target = customers
    features = frame[["age", "income"]].fillna(0)
    model = LogisticRegression(max_iter=500).fit(features, target)
    save_bundle(Ensemble(model, model, features.head(5)), tmp_path / "b", sample_input=features.head(5))
    (tmp_path / "b" / "artifacts" / "model" / "second" / "reference" / "stats.json").write_text("{}")
    with pytest.raises(IntegrityError, match=r"artifacts/model/second/reference/stats.json"):
        load_bundle(tmp_path / "b")


def test_classmethod_load_and_array_input(tmp_path: Path, iris: Any) -> None:
    x, _ = iris
    loaded = check_flavor(Doubler(), x[:10], tmp_path)
    assert loaded.adapter.input_format == "array"
    assert loaded.manifest.signature.outputs[0].kind == "regression"


def test_local_class_is_refused(tmp_path: Path, iris: Any) -> None:
    class Local:
        def load(self, artifacts_dir: Path) -> None:
            return None

        def predict(self, data: Any) -> np.ndarray:
            return np.zeros(len(data))

    x, _ = iris
    with pytest.raises(Unsupported, match=r"inside a function"):
        save_bundle(Local(), tmp_path / "b", sample_input=x[:5])


def _forge_options(bundle: Path, **options: Any) -> None:
    manifest = read_manifest(bundle)
    forged = manifest.model_copy(update={"flavor_options": {**manifest.flavor_options, **options}})
    (bundle / MANIFEST_FILE).write_text(forged.to_yaml())


@pytest.mark.parametrize(
    ("options", "error", "match"),
    [
        ({"module": "no_such_module_abc"}, MissingDependency, "no_such_module_abc"),
        ({"module": "os", "qualname": "system"}, IntegrityError, "not a class with a predict"),
        ({"module": "pathlib", "qualname": "Path"}, IntegrityError, "not a class with a predict"),
        ({"module": "os; rm -rf /", "qualname": "x"}, IntegrityError, "Invalid python-flavor import path"),
        ({"module": "bundle.models", "qualname": "NoPredict"}, IntegrityError, "not a class with a predict"),
    ],
)
def test_forged_import_paths_are_refused(
    tmp_path: Path, iris: Any, options: dict[str, str], error: type, match: str
) -> None:
    x, _ = iris
    save_bundle(Doubler(), tmp_path / "b", sample_input=x[:5])
    _forge_options(tmp_path / "b", **options)
    with pytest.raises(error, match=match):
        load_bundle(tmp_path / "b")


SCRIPT = """
import sys
from pathlib import Path

import numpy as np

from modelport.bundle.io import save_bundle

Path(MARKER).touch()  # runs whenever this file runs: at save, and when the shipped copy is executed


class Scaler:
    def load(self, artifacts_dir):
        self.factor = float((artifacts_dir / "factor.txt").read_text())

    def save(self, artifacts_dir):
        (artifacts_dir / "factor.txt").write_text("3")

    def predict(self, data):
        return np.asarray(data, dtype="float64").sum(axis=1) * getattr(self, "factor", 3.0)

    input_format = "array"


if __name__ == "__main__":
    save_bundle(Scaler(), sys.argv[1], sample_input=np.ones((3, 2)))
"""


def test_class_in_main_ships_its_source_and_needs_trust(tmp_path: Path) -> None:
    script = tmp_path / "train.py"
    marker = tmp_path / "ran"
    script.write_text(f"MARKER = {str(marker)!r}\n" + textwrap.dedent(SCRIPT))
    subprocess.run([sys.executable, str(script), str(tmp_path / "b")], check=True, timeout=120)
    marker.unlink()
    manifest = read_manifest(tmp_path / "b")
    assert manifest.flavor_options["module"] == "__main__"
    assert manifest.flavor_options["code"] == "code/train.py"

    with pytest.raises(UntrustedArtifact, match=r"shipped Python source 'code/train.py'"):
        load_bundle(tmp_path / "b")
    assert not marker.exists()

    with pytest.warns(PickleLoadWarning, match=r"code/train.py"):
        loaded = load_bundle(tmp_path / "b", trusted_pickle=True)
    assert marker.exists()
    np.testing.assert_array_equal(loaded.adapter.predict(np.ones((2, 2))), [6.0, 6.0])


def test_shipped_source_is_rechecked_before_it_runs(tmp_path: Path) -> None:
    from modelport.bundle.flavors.python import PythonFlavor

    (tmp_path / "code").mkdir()
    marker = tmp_path / "ran"
    (tmp_path / "code" / "evil.py").write_text(f"open({str(marker)!r}, 'w')\n")
    options = {"module": "__main__", "qualname": "X", "code": "code/evil.py", "code_sha256": "0" * 64}
    with pytest.raises(IntegrityError, match=r"does not match the sha256"):
        PythonFlavor().load(tmp_path, options, trusted_pickle=True)
    assert not marker.exists()
    with pytest.raises(UntrustedArtifact):
        PythonFlavor().load(tmp_path, {**options, "code": "../../etc/evil.py"})
    with pytest.raises(IntegrityError, match=r"not a plain file"):
        PythonFlavor().load(tmp_path, {**options, "code": "../../etc/evil.py"}, trusted_pickle=True)


def test_class_that_cannot_be_rebuilt_is_explained(tmp_path: Path, iris: Any) -> None:
    from bundle.models import LoadsNothing, NeedsArgs

    x, _ = iris
    save_bundle(NeedsArgs(2.0), tmp_path / "args", sample_input=x[:5])
    with pytest.raises(Unsupported, match="without arguments") as info:
        load_bundle(tmp_path / "args")
    assert info.value.hint is not None
    assert "classmethod" in info.value.hint
    save_bundle(LoadsNothing(), tmp_path / "none", sample_input=x[:5])
    with pytest.raises(IntegrityError, match=r"LoadsNothing\.load returned NoneType"):
        load_bundle(tmp_path / "none")
