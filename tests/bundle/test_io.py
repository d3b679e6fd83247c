"""save_bundle / verify_bundle / load_bundle: manifest contents, atomic writes, and every integrity refusal."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from modelport.bundle.flavors.base import ModelAdapter, SavedArtifacts
from modelport.bundle.flavors.table import FlavorTable
from modelport.bundle.io import (
    FrameworkVersionWarning,
    load_bundle,
    read_reference_sample,
    save_bundle,
    verify_bundle,
)
from modelport.bundle.manifest import MANIFEST_FILE, read_manifest
from modelport.core.errors import Conflict, IntegrityError, InvalidName, NotFound, ValidationError


@pytest.fixture
def ridge(iris: Any) -> tuple[Any, np.ndarray]:
    from sklearn.linear_model import Ridge

    x, _ = iris
    return Ridge().fit(x[:, 1:], x[:, 0]), x[:, 1:]


@pytest.fixture
def bundle(tmp_path: Path, ridge: Any) -> Path:
    model, x = ridge
    save_bundle(model, tmp_path / "b", name="ridge", sample_input=x[:10], reference_data=x)
    return tmp_path / "b"


def _versions(*dists: str) -> dict[str, str]:
    from importlib.metadata import version

    return {d: version(d) for d in dists}


def test_manifest_records_environment_and_pins(tmp_path: Path, ridge: Any) -> None:
    model, x = ridge
    manifest = save_bundle(
        model,
        tmp_path / "b",
        name="ridge",
        sample_input=x[:10],
        requirements=["my-features>=2", "numpy>=1.26"],
        metrics={"r2": 0.9},
        tags={"team": "risk", "training_data": "s3://data/iris.parquet"},
        description="Sepal length from the rest.",
        user="ada",
    )
    pins = _versions("numpy", "pandas", "scikit-learn", "skops")
    assert manifest.flavor == "sklearn"
    assert manifest.python_version == ".".join(map(str, sys.version_info[:3]))
    assert manifest.framework == {k: pins[k] for k in ("scikit-learn", "skops")}
    assert f"pandas=={pins['pandas']}" in manifest.requirements
    assert f"scikit-learn=={pins['scikit-learn']}" in manifest.requirements
    assert f"skops=={pins['skops']}" in manifest.requirements
    assert "my-features>=2" in manifest.requirements
    assert "numpy>=1.26" in manifest.requirements  # the user's pin replaces the detected one
    assert not any(r.startswith("numpy==") for r in manifest.requirements)
    assert not any(r.startswith(("torch", "xgboost", "lightgbm")) for r in manifest.requirements)
    assert manifest.metrics == {"r2": 0.9}
    assert manifest.provenance.user == "ada"
    assert manifest.provenance.training_data == "s3://data/iris.parquet"
    assert manifest.provenance.created_at.utcoffset() is not None
    assert read_manifest(tmp_path / "b") == manifest


def test_git_commit_recorded_inside_a_repository(tmp_path: Path, ridge: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@x",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@x",
    }
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True, env=env)
    subprocess.run(["git", "commit", "-q", "--allow-empty", "-m", "init"], cwd=repo, check=True, env=env)
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, check=True, capture_output=True, text=True)
    model, x = ridge
    monkeypatch.chdir(repo)
    inside = save_bundle(model, tmp_path / "in", sample_input=x[:5])
    outside_dir = tmp_path / "plain"
    outside_dir.mkdir()
    monkeypatch.chdir(outside_dir)
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    outside = save_bundle(model, tmp_path / "out", sample_input=x[:5])
    assert inside.provenance.git_commit == head.stdout.strip()
    assert outside.provenance.git_commit is None


def test_round_trip_and_reference(bundle: Path, ridge: Any) -> None:
    model, x = ridge
    loaded = load_bundle(bundle)
    np.testing.assert_array_equal(loaded.adapter.predict(x), model.predict(x))
    assert loaded.reference is not None
    assert loaded.reference["row_count"] == len(x)
    assert loaded.reference["source"] == "reference_data"
    assert loaded.reference["predictions"]["kind"] == "numeric"
    assert loaded.reference["predictions"]["mean"] == pytest.approx(model.predict(x).mean())
    sample = read_reference_sample(bundle)
    assert isinstance(sample, np.ndarray)
    np.testing.assert_array_equal(sample, x)


def test_reference_defaults_to_the_sample(tmp_path: Path, ridge: Any) -> None:
    model, x = ridge
    save_bundle(model, tmp_path / "b", sample_input=x[:7])
    reference = load_bundle(tmp_path / "b").reference
    assert reference is not None
    assert (reference["row_count"], reference["source"]) == (7, "sample_input")


def test_frame_bundle_keeps_columns_and_sample(tmp_path: Path, customers: Any) -> None:
    from sklearn.tree import DecisionTreeClassifier

    frame, target = customers
    numeric = frame[["age", "income"]].fillna(0)
    model = DecisionTreeClassifier(max_depth=3).fit(numeric, target)
    manifest = save_bundle(model, tmp_path / "b", sample_input=numeric.head(5), reference_data=numeric)
    assert manifest.signature.column_names == ("age", "income")
    assert manifest.signature.classes == ("churn", "stay")
    sample = read_reference_sample(tmp_path / "b")
    assert isinstance(sample, pd.DataFrame)
    pd.testing.assert_frame_equal(sample, numeric.reset_index(drop=True))
    stats = load_bundle(tmp_path / "b").reference
    assert stats is not None
    assert set(stats["probabilities"]) == {"churn", "stay"}


def test_destination_must_be_new_or_empty(tmp_path: Path, ridge: Any) -> None:
    model, x = ridge
    (tmp_path / "empty").mkdir()
    save_bundle(model, tmp_path / "empty", sample_input=x[:5])
    assert (tmp_path / "empty" / MANIFEST_FILE).is_file()
    with pytest.raises(Conflict, match=r"already exists") as info:
        save_bundle(model, tmp_path / "empty", sample_input=x[:5])
    assert info.value.hint
    (tmp_path / "file").write_text("x")
    with pytest.raises(Conflict):
        save_bundle(model, tmp_path / "file", sample_input=x[:5])


class _FailingFlavor:
    name = "failing"
    extra = "failing"

    def detect(self, model: object) -> bool:
        return False

    def adapter(self, model: Any) -> ModelAdapter:
        from modelport.bundle.flavors.pickle import ObjectAdapter

        return ObjectAdapter(model)

    def save(
        self, model: Any, artifacts_dir: Path, *, trusted_pickle: bool = False, sample_input: Any = None
    ) -> SavedArtifacts:
        (artifacts_dir / "half-written.bin").write_bytes(b"x" * 100)
        raise RuntimeError("disk full")

    def load(self, artifacts_dir: Path, options: dict[str, Any], *, trusted_pickle: bool = False) -> ModelAdapter:
        raise AssertionError("never loaded")


def test_failed_save_leaves_nothing_behind(tmp_path: Path, ridge: Any) -> None:
    model, x = ridge
    table = FlavorTable.default().with_flavor("failing", _FailingFlavor())
    with pytest.raises(RuntimeError, match=r"disk full"):
        save_bundle(model, tmp_path / "out" / "b", sample_input=x[:5], flavor="failing", flavors=table)
    assert list((tmp_path / "out").iterdir()) == []


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"name": "../evil"}, InvalidName, "'../evil'"),
        ({"requirements": ["not a requirement!"]}, ValidationError, "'not a requirement!'"),
        ({"metrics": {"auc": "high"}}, ValidationError, "metrics.auc"),
        ({"redaction": {"nope": "hash"}}, ValidationError, "'nope'"),
        ({"redaction": {"input": "shred"}}, ValidationError, "redaction.input"),
        ({"reference_data": pd.DataFrame({"a": [1]})}, ValidationError, "tensor signature|does not fit"),
    ],
)
def test_bad_arguments_are_named(tmp_path: Path, ridge: Any, kwargs: dict[str, Any], error: type, match: str) -> None:
    model, x = ridge
    with pytest.raises(error, match=match) as info:
        save_bundle(model, tmp_path / "b", sample_input=x[:5], **kwargs)
    assert info.value.hint
    assert not (tmp_path / "b").exists()


def test_reference_data_missing_a_column_is_named(tmp_path: Path, customers: Any) -> None:
    from sklearn.linear_model import LinearRegression

    frame, _ = customers
    numeric = frame[["age", "income"]].fillna(0)
    model = LinearRegression().fit(numeric, numeric["age"] * 2)
    with pytest.raises(ValidationError, match=r"'income'"):
        save_bundle(model, tmp_path / "b", sample_input=numeric.head(3), reference_data=numeric[["age"]])


def test_redaction_is_recorded(tmp_path: Path, customers: Any) -> None:
    from sklearn.linear_model import LinearRegression

    frame, _ = customers
    numeric = frame[["age", "income"]].fillna(0)
    model = LinearRegression().fit(numeric, numeric["age"])
    manifest = save_bundle(model, tmp_path / "b", sample_input=numeric.head(3), redaction={"income": "mask"})
    assert manifest.redaction == {"income": "mask"}


def test_verify_accepts_a_clean_bundle(bundle: Path) -> None:
    assert verify_bundle(bundle) == read_manifest(bundle)


def test_tampered_artifact_is_named(bundle: Path) -> None:
    model = bundle / "artifacts" / "model.skops"
    data = bytearray(model.read_bytes())
    data[100] ^= 0x01
    model.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match=r"artifacts/model.skops.*sha256") as info:
        load_bundle(bundle)
    assert info.value.hint


def test_truncated_artifact_is_named(bundle: Path) -> None:
    stats = bundle / "reference" / "stats.json"
    stats.write_bytes(stats.read_bytes()[:10])
    with pytest.raises(IntegrityError, match=r"reference/stats.json.*truncated"):
        verify_bundle(bundle)


def test_missing_artifact_is_named(bundle: Path) -> None:
    (bundle / "reference" / "sample.parquet").unlink()
    with pytest.raises(IntegrityError, match=r"reference/sample.parquet.*missing"):
        load_bundle(bundle)


def test_extra_file_is_refused(bundle: Path) -> None:
    (bundle / "artifacts" / "backdoor.py").write_text("print('hi')")
    with pytest.raises(IntegrityError, match=r"artifacts/backdoor.py"):
        load_bundle(bundle)


def test_symlink_is_refused(bundle: Path, tmp_path: Path) -> None:
    model = bundle / "artifacts" / "model.skops"
    real = tmp_path / "elsewhere.skops"
    model.rename(real)
    model.symlink_to(real)
    with pytest.raises(IntegrityError, match=r"symbolic link"):
        verify_bundle(bundle)


@pytest.mark.parametrize("path", ["../outside.bin", "/etc/passwd", "modelport.yaml", "artifacts/../../x", "other/x"])
def test_manifest_paths_outside_the_bundle_are_refused(bundle: Path, path: str) -> None:
    manifest_file = bundle / MANIFEST_FILE
    text = manifest_file.read_text().replace("path: reference/stats.json", f"path: {path}")
    manifest_file.write_text(text)
    with pytest.raises(IntegrityError, match=r"outside its artifacts"):
        verify_bundle(bundle)


def test_broken_manifest_is_an_integrity_error(bundle: Path) -> None:
    (bundle / MANIFEST_FILE).write_text("name: [unclosed")
    with pytest.raises(IntegrityError, match=r"not valid"):
        load_bundle(bundle)


def test_not_a_bundle(tmp_path: Path) -> None:
    with pytest.raises(NotFound):
        load_bundle(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(NotFound, match=r"modelport.yaml"):
        load_bundle(tmp_path / "empty")


def test_framework_version_drift_warns(bundle: Path) -> None:
    manifest_file = bundle / MANIFEST_FILE
    manifest = read_manifest(bundle)
    forged = manifest.model_copy(update={"framework": {**manifest.framework, "scikit-learn": "0.0.1"}})
    manifest_file.write_text(forged.to_yaml())
    with pytest.warns(FrameworkVersionWarning, match=r"scikit-learn 0\.0\.1 \(installed: "):
        load_bundle(bundle)


def test_no_warning_when_versions_match(bundle: Path, recwarn: pytest.WarningsRecorder) -> None:
    load_bundle(bundle)
    assert not [w for w in recwarn if issubclass(w.category, FrameworkVersionWarning)]


class _SmallBatchesOnly:
    """Predicts on the sample, fails on the bigger reference data."""

    input_format = "array"

    def load(self, artifacts_dir: Path) -> None:
        return None

    def predict(self, data: np.ndarray) -> np.ndarray:
        if len(data) > 5:
            raise MemoryError("batch too large")
        return np.zeros(len(data))


def test_reference_without_predictions_when_the_model_cannot_predict_it(tmp_path: Path, iris: Any) -> None:
    x, _ = iris
    with pytest.warns(UserWarning, match="could not predict on the reference_data"):
        save_bundle(_SmallBatchesOnly(), tmp_path / "b", sample_input=x[:5], reference_data=x)
    reference = load_bundle(tmp_path / "b").reference
    assert reference is not None
    assert "predictions" not in reference
    assert "batch too large" in reference["predictions_error"]
    assert reference["row_count"] == len(x)


def test_frame_sample_for_a_model_fitted_on_arrays(tmp_path: Path, iris: Any) -> None:
    from sklearn.linear_model import LogisticRegression

    from modelport.testing import check_flavor

    x, y = iris
    frame = pd.DataFrame(x, columns=["sl", "sw", "pl", "pw"])
    loaded = check_flavor(LogisticRegression(max_iter=300).fit(x, y), frame.head(10), tmp_path)
    assert loaded.manifest.signature.kind == "tabular"
    assert loaded.adapter.input_format == "array"
