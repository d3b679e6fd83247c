"""The XGBoost flavor: wrappers and Boosters round-trip through native JSON with identical predictions."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import xgboost as xgb

from modelport.bundle.flavors.xgboost import MODEL_FILE, XGBoostFlavor
from modelport.core.errors import IntegrityError, MissingDependency, Unsupported, ValidationError
from modelport.testing import check_flavor


@pytest.fixture
def frame() -> tuple[pd.DataFrame, np.ndarray]:
    """Three numeric columns and a categorical one; a 3-class target."""
    rng = np.random.default_rng(0)
    n = 150
    data = pd.DataFrame(
        {
            "a": rng.normal(size=n),
            "b": rng.normal(size=n),
            "c": rng.normal(size=n),
            "color": pd.Categorical(rng.choice(["red", "green", "blue"], n)),
        }
    )
    target = (data["a"] > 0).astype(int) + (data["color"] == "red").astype(int)
    return data, target.to_numpy()


def small_classifier(data: pd.DataFrame, target: np.ndarray) -> xgb.XGBClassifier:
    model = xgb.XGBClassifier(n_estimators=4, max_depth=3, enable_categorical=True, tree_method="hist", n_jobs=1)
    return model.fit(data, target)


def test_classifier_on_a_frame_with_categories_passes_the_battery(
    frame: tuple[pd.DataFrame, np.ndarray], tmp_path: Path
) -> None:
    data, target = frame
    model = small_classifier(data, target)
    loaded = check_flavor(model, data.head(30), tmp_path)

    assert loaded.manifest.flavor == "xgboost"
    options = loaded.manifest.flavor_options
    assert options["estimator"] == "XGBClassifier"
    assert options["input_format"] == "frame"
    assert options["classes"] == [0, 1, 2]
    assert options["categorical_features"] == ["color"]
    assert loaded.adapter.classes == (0, 1, 2)
    np.testing.assert_array_equal(loaded.adapter.predict_proba(data), model.predict_proba(data))


def test_string_categories_and_shuffled_columns_give_the_same_answers(
    frame: tuple[pd.DataFrame, np.ndarray], tmp_path: Path
) -> None:
    data, target = frame
    model = small_classifier(data, target)
    flavor = XGBoostFlavor()
    saved = flavor.save(model, tmp_path)
    adapter = flavor.load(tmp_path, saved.options)

    as_strings = data.assign(color=data["color"].astype(str))[["color", "c", "b", "a"]]
    np.testing.assert_array_equal(adapter.predict(as_strings), model.predict(data))
    np.testing.assert_array_equal(adapter.predict_proba(as_strings), model.predict_proba(data))
    with pytest.raises(ValidationError, match="'b'"):
        adapter.predict(data.drop(columns=["b"]))


def test_regressor_on_an_array_passes_the_battery(iris: tuple[np.ndarray, np.ndarray], tmp_path: Path) -> None:
    x, y = iris
    model = xgb.XGBRegressor(n_estimators=4, max_depth=2, n_jobs=1).fit(x, y)
    loaded = check_flavor(model, x[:20], tmp_path)

    assert loaded.manifest.flavor_options["input_format"] == "array"
    assert loaded.adapter.has_proba is False
    assert loaded.manifest.signature.output("predict") is not None
    with pytest.raises(Unsupported, match="predict_proba"):
        loaded.adapter.predict_proba(x[:3])


def test_raw_booster_passes_the_battery_and_predicts_its_raw_output(
    iris: tuple[np.ndarray, np.ndarray], tmp_path: Path
) -> None:
    x, y = iris
    booster = xgb.train({"objective": "multi:softprob", "num_class": 3, "nthread": 1}, xgb.DMatrix(x, label=y), 3)
    loaded = check_flavor(booster, x[:20], tmp_path)

    assert loaded.manifest.flavor_options["estimator"] == "Booster"
    assert loaded.adapter.classes is None
    np.testing.assert_array_equal(loaded.adapter.predict(x), booster.predict(xgb.DMatrix(x)))


def test_saved_as_native_json_with_versions_pinned(iris: tuple[np.ndarray, np.ndarray], tmp_path: Path) -> None:
    x, y = iris
    saved = XGBoostFlavor().save(xgb.XGBClassifier(n_estimators=2, n_jobs=1).fit(x, y), tmp_path)

    assert saved.files == (MODEL_FILE,)
    assert saved.pickle_files == ()
    assert "learner" in json.loads((tmp_path / MODEL_FILE).read_text(encoding="utf-8"))
    assert saved.framework == {"xgboost": xgb.__version__}
    assert saved.requirements == (f"xgboost=={xgb.__version__.split('+')[0]}",)


def test_detect_recognises_xgboost_objects_only(iris: tuple[np.ndarray, np.ndarray]) -> None:
    x, y = iris
    flavor = XGBoostFlavor()
    assert flavor.detect(xgb.XGBRegressor())
    assert flavor.detect(xgb.train({}, xgb.DMatrix(x, label=y), 1))
    assert not flavor.detect(object())
    assert not flavor.detect(np.zeros(3))


def test_detect_never_imports_xgboost() -> None:
    code = (
        "import sys\n"
        "from modelport.bundle.flavors.xgboost import XGBoostFlavor\n"
        "assert not XGBoostFlavor().detect(object())\n"
        "assert 'xgboost' not in sys.modules, 'xgboost was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_unfitted_and_foreign_models_are_refused(tmp_path: Path) -> None:
    flavor = XGBoostFlavor()
    with pytest.raises(ValidationError, match="not fitted"):
        flavor.save(xgb.XGBClassifier(), tmp_path)
    with pytest.raises(Unsupported, match="'object'"):
        flavor.adapter(object())


@pytest.mark.parametrize("content", [b"", b"\x80\x04garbage", b'{"learner": 42}'])
def test_corrupted_model_file_is_an_integrity_error(
    iris: tuple[np.ndarray, np.ndarray], tmp_path: Path, content: bytes
) -> None:
    x, y = iris
    flavor = XGBoostFlavor()
    saved = flavor.save(xgb.XGBRegressor(n_estimators=2, n_jobs=1).fit(x, y), tmp_path)
    (tmp_path / MODEL_FILE).write_bytes(content)
    with pytest.raises(IntegrityError, match=MODEL_FILE):
        flavor.load(tmp_path, saved.options)


@pytest.mark.parametrize(
    ("options", "match"),
    [({"estimator": "os.system"}, "os.system"), ({"estimator": "XGBRegressor", "input_format": "csv"}, "csv")],
)
def test_hostile_or_broken_options_are_refused(
    iris: tuple[np.ndarray, np.ndarray], tmp_path: Path, options: dict[str, Any], match: str
) -> None:
    x, y = iris
    flavor = XGBoostFlavor()
    flavor.save(xgb.XGBRegressor(n_estimators=2, n_jobs=1).fit(x, y), tmp_path)
    with pytest.raises(IntegrityError, match=match):
        flavor.load(tmp_path, options)


def test_missing_xgboost_names_the_extra(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "xgboost", None)
    with pytest.raises(MissingDependency) as caught:
        XGBoostFlavor().load(tmp_path, {"estimator": "Booster"})
    assert "modelport[xgboost]" in str(caught.value.hint)
