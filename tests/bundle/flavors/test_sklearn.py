"""The scikit-learn flavor: the check_flavor battery on classifiers, pipelines and regressors, and the allow-list."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from bundle.models import shout
from modelport.bundle.flavors.sklearn import SklearnFlavor, is_trusted_type
from modelport.bundle.hashing import sha256_file
from modelport.bundle.io import load_bundle, save_bundle
from modelport.bundle.manifest import MANIFEST_FILE, read_manifest
from modelport.core.errors import IntegrityError, Unsupported, UntrustedArtifact, ValidationError
from modelport.runtime.predictor import Predictor
from modelport.testing import check_flavor


def _churn_pipeline(frame: pd.DataFrame, target: np.ndarray) -> Any:
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline, make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    columns = ColumnTransformer(
        [
            ("num", make_pipeline(SimpleImputer(), StandardScaler()), ["age", "income"]),
            ("cat", OneHotEncoder(handle_unknown="ignore"), ["plan", "region", "channel"]),
            ("flag", "passthrough", ["active"]),
        ]
    )
    return Pipeline([("columns", columns), ("model", LogisticRegression(max_iter=500))]).fit(frame, target)


def test_logistic_regression_on_arrays(tmp_path: Path, iris: Any) -> None:
    from sklearn.linear_model import LogisticRegression

    x, y = iris
    loaded = check_flavor(LogisticRegression(max_iter=300).fit(x, y), x[:20], tmp_path)
    manifest = loaded.manifest
    assert manifest.flavor_options["input_format"] == "array"
    assert manifest.signature.kind == "tensor"
    assert manifest.signature.classes == (0, 1, 2)


def test_pipeline_with_string_categories_on_a_frame(tmp_path: Path, customers: Any) -> None:
    frame, target = customers
    model = _churn_pipeline(frame, target)
    loaded = check_flavor(model, frame.head(30), tmp_path)
    signature = loaded.manifest.signature
    assert loaded.adapter.input_format == "frame"
    assert signature.column_names == tuple(frame.columns)
    types = {c.name: c.type for c in signature.columns}
    assert types == {
        "age": "int",
        "income": "float",
        "plan": "string",
        "region": "string",
        "channel": "category",
        "active": "bool",
    }
    assert next(c for c in signature.columns if c.name == "income").nullable
    assert signature.classes == ("churn", "stay")
    # Records with an unseen category go through the runtime and the loaded pipeline.
    records = frame.head(3).to_dict(orient="records")
    records[0]["plan"] = "enterprise"
    out = Predictor(loaded).predict_proba(records)
    assert out.shape == (3, 2)


def test_regressor_on_a_frame(tmp_path: Path, customers: Any) -> None:
    from sklearn.ensemble import GradientBoostingRegressor

    frame, _ = customers
    features = frame[["age", "income"]]
    model = GradientBoostingRegressor(n_estimators=10).fit(features.fillna(0), frame["age"] * 3.0 + 1)
    loaded = check_flavor(model, features.fillna(0).head(20), tmp_path)
    (predict,) = loaded.manifest.signature.outputs
    assert (predict.kind, predict.dtype) == ("regression", "float64")


def test_random_forest_needs_allow_listed_internal_types(tmp_path: Path, iris: Any) -> None:
    from sklearn.ensemble import RandomForestClassifier

    x, y = iris
    check_flavor(RandomForestClassifier(n_estimators=3, random_state=0).fit(x, y), x[:10], tmp_path)


def test_unfitted_estimator_is_refused(tmp_path: Path, iris: Any) -> None:
    from sklearn.linear_model import LogisticRegression

    x, _ = iris
    with pytest.raises(ValidationError, match=r"not fitted"):
        save_bundle(LogisticRegression(), tmp_path / "b", sample_input=x[:5])


def test_user_function_in_a_pipeline_is_refused_at_save(tmp_path: Path, iris: Any) -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    x, y = iris
    model = make_pipeline(FunctionTransformer(shout), LogisticRegression(max_iter=300)).fit(x, y)
    with pytest.raises(Unsupported, match=r"bundle.models.shout") as info:
        save_bundle(model, tmp_path / "b", sample_input=x[:5])
    assert info.value.hint is not None
    assert "trusted_pickle" in info.value.hint
    assert not (tmp_path / "b").exists()


def test_untrusted_type_in_a_bundle_is_refused_at_load(tmp_path: Path, iris: Any) -> None:
    """A bundle whose skops file names a type outside the allow-list, with hashes that match."""
    import skops.io as sio
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    x, y = iris
    save_bundle(LogisticRegression(max_iter=300).fit(x, y), tmp_path / "b", sample_input=x[:5])
    evil = make_pipeline(FunctionTransformer(shout), LogisticRegression(max_iter=300)).fit(x, y)
    artifact = tmp_path / "b" / "artifacts" / "model.skops"
    sio.dump(evil, artifact)
    manifest = read_manifest(tmp_path / "b")
    entries = tuple(
        a.model_copy(update={"sha256": sha256_file(artifact), "size": artifact.stat().st_size})
        if a.path == "artifacts/model.skops"
        else a
        for a in manifest.artifacts
    )
    (tmp_path / "b" / MANIFEST_FILE).write_text(manifest.model_copy(update={"artifacts": entries}).to_yaml())
    with pytest.raises(UntrustedArtifact, match=r"bundle.models.shout") as info:
        load_bundle(tmp_path / "b")
    assert info.value.hint


def test_non_skops_bytes_are_an_integrity_error(tmp_path: Path) -> None:
    (tmp_path / "model.skops").write_bytes(b"definitely not a zip")
    with pytest.raises(IntegrityError, match=r"not a readable skops file"):
        SklearnFlavor().load(tmp_path, {"file": "model.skops"})


@pytest.mark.parametrize(
    ("name", "trusted"),
    [
        ("sklearn.tree._tree.Tree", True),
        ("sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor", True),
        ("sklearn.feature_selection._univariate_selection.f_classif", True),
        ("sklearn.linear_model._logistic.LogisticRegression", True),
        ("numpy.dtype", True),
        ("numpy.dtypes.Float64DType", True),
        ("numpy.mean", True),
        ("sklearn.utils._testing.assert_run_python_script_without_output", False),
        ("sklearn.utils._testing.TempMemmap", False),
        ("sklearn.utils.validation.check_array", False),
        ("sklearn.nonexistent.Thing", False),
        ("builtins.eval", False),
        ("os.system", False),
        ("subprocess.Popen", False),
        ("numpy.load", False),
        ("sklearn..bad", False),
        ("__main__.Model", False),
    ],
)
def test_allow_list(name: str, trusted: bool) -> None:
    assert is_trusted_type(name) is trusted


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_types_used_by_common_estimators_are_trusted(iris: Any) -> None:
    import skops.io as sio
    from sklearn.cluster import KMeans
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.feature_selection import SelectKBest
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import KBinsDiscretizer

    x, y = iris
    models = [
        HistGradientBoostingClassifier(max_iter=3),
        KNeighborsClassifier(),
        MLPClassifier(max_iter=5),
        make_pipeline(SelectKBest(k=2), KBinsDiscretizer(n_bins=3), KMeans(n_clusters=2, n_init=1)),
    ]
    for model in models:
        model.fit(x, y)
        untrusted = sio.get_untrusted_types(data=sio.dumps(model))
        assert [t for t in untrusted if not is_trusted_type(t)] == [], type(model).__name__
