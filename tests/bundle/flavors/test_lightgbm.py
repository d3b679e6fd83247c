"""The LightGBM flavor: native text models load as Boosters that answer exactly like the wrappers."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest

from modelport.bundle.flavors.lightgbm import MODEL_FILE, LightGBMFlavor
from modelport.core.errors import IntegrityError, MissingDependency, Unsupported, ValidationError
from modelport.testing import check_flavor


@pytest.fixture
def frame() -> tuple[pd.DataFrame, np.ndarray]:
    """Two numeric columns and a categorical one; a binary string target."""
    rng = np.random.default_rng(1)
    n = 200
    data = pd.DataFrame(
        {
            "x": rng.normal(size=n),
            "y": rng.normal(size=n),
            "shop": pd.Categorical(rng.choice(["north", "south", "east"], n)),
        }
    )
    score = data["x"] + (data["shop"] == "north").astype(float) + rng.normal(0, 0.3, n)
    return data, np.where(score > 0.5, "churn", "stay")


def small(estimator: type[lgb.LGBMModel], **params: object) -> lgb.LGBMModel:
    return estimator(n_estimators=5, num_leaves=7, min_child_samples=5, verbose=-1, n_jobs=1, **params)


def test_binary_classifier_with_string_labels_and_categories_passes_the_battery(
    frame: tuple[pd.DataFrame, np.ndarray], tmp_path: Path
) -> None:
    data, target = frame
    model = small(lgb.LGBMClassifier).fit(data, target)
    loaded = check_flavor(model, data.head(40), tmp_path)

    options = loaded.manifest.flavor_options
    assert options["estimator"] == "LGBMClassifier"
    assert options["classes"] == ["churn", "stay"]
    assert options["categorical_features"] == ["shop"]
    assert options["input_format"] == "frame"
    assert loaded.adapter.classes == ("churn", "stay")
    np.testing.assert_array_equal(loaded.adapter.predict(data), model.predict(data))
    np.testing.assert_array_equal(loaded.adapter.predict_proba(data), model.predict_proba(data))


def test_loaded_booster_accepts_string_categories_in_any_column_order(
    frame: tuple[pd.DataFrame, np.ndarray], tmp_path: Path
) -> None:
    data, target = frame
    model = small(lgb.LGBMClassifier).fit(data, target)
    flavor = LightGBMFlavor()
    adapter = flavor.load(tmp_path, flavor.save(model, tmp_path).options)

    as_strings = data.assign(shop=data["shop"].astype(str))[["shop", "y", "x"]]
    np.testing.assert_array_equal(adapter.predict(as_strings), model.predict(data))
    np.testing.assert_array_equal(adapter.predict_proba(as_strings), model.predict_proba(data))
    with pytest.raises(ValidationError, match="'y'"):
        adapter.predict(data.drop(columns=["y"]))


def test_multiclass_classifier_on_arrays_passes_the_battery(
    iris: tuple[np.ndarray, np.ndarray], tmp_path: Path
) -> None:
    x, y = iris
    model = small(lgb.LGBMClassifier).fit(x, y)
    loaded = check_flavor(model, x[::10], tmp_path)

    assert loaded.manifest.flavor_options["input_format"] == "array"
    assert loaded.manifest.flavor_options["classes_dtype"] == "int64"
    predicted = loaded.adapter.predict(x)
    assert predicted.dtype == model.predict(x).dtype
    np.testing.assert_array_equal(predicted, model.predict(x))
    np.testing.assert_array_equal(loaded.adapter.predict_proba(x), model.predict_proba(x))


def test_regressor_and_raw_booster_pass_the_battery(iris: tuple[np.ndarray, np.ndarray], tmp_path: Path) -> None:
    x, y = iris
    regressor = small(lgb.LGBMRegressor).fit(x, y.astype(float))
    loaded = check_flavor(regressor, x[::10], tmp_path / "regressor")
    assert loaded.adapter.has_proba is False
    np.testing.assert_array_equal(loaded.adapter.predict(x), regressor.predict(x))

    booster = lgb.train({"objective": "binary", "verbose": -1, "num_threads": 1}, lgb.Dataset(x, y > 0), 3)
    loaded = check_flavor(booster, x[::10], tmp_path / "booster")
    assert loaded.manifest.flavor_options["estimator"] == "Booster"
    np.testing.assert_array_equal(loaded.adapter.predict(x), booster.predict(x))
    with pytest.raises(Unsupported, match="predict_proba"):
        loaded.adapter.predict_proba(x)


def test_saved_as_native_text_with_versions_pinned(iris: tuple[np.ndarray, np.ndarray], tmp_path: Path) -> None:
    x, y = iris
    saved = LightGBMFlavor().save(small(lgb.LGBMRegressor).fit(x, y), tmp_path)

    assert saved.files == (MODEL_FILE,)
    assert saved.pickle_files == ()
    assert (tmp_path / MODEL_FILE).read_text(encoding="utf-8").startswith("tree\n")
    assert saved.framework == {"lightgbm": lgb.__version__}
    assert saved.requirements == (f"lightgbm=={lgb.__version__}",)


def test_custom_objective_and_unfitted_models_are_refused(iris: tuple[np.ndarray, np.ndarray], tmp_path: Path) -> None:
    x, y = iris

    def squared(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return y_pred - y_true, np.ones_like(y_pred)

    flavor = LightGBMFlavor()
    with pytest.raises(Unsupported, match="custom objective"):
        flavor.save(small(lgb.LGBMRegressor, objective=squared).fit(x, y), tmp_path)
    with pytest.raises(ValidationError, match="not fitted"):
        flavor.save(lgb.LGBMClassifier(), tmp_path)


def test_detect_recognises_lightgbm_objects_without_importing_it() -> None:
    flavor = LightGBMFlavor()
    assert flavor.detect(lgb.LGBMClassifier())
    assert not flavor.detect(object())
    code = (
        "import sys\n"
        "from modelport.bundle.flavors.lightgbm import LightGBMFlavor\n"
        "assert not LightGBMFlavor().detect([1, 2])\n"
        "assert 'lightgbm' not in sys.modules, 'lightgbm was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_corrupted_model_file_and_bad_options_are_integrity_errors(
    iris: tuple[np.ndarray, np.ndarray], tmp_path: Path
) -> None:
    x, y = iris
    flavor = LightGBMFlavor()
    saved = flavor.save(small(lgb.LGBMRegressor).fit(x, y), tmp_path)
    with pytest.raises(IntegrityError, match="'parquet'"):
        flavor.load(tmp_path, {**saved.options, "input_format": "parquet"})
    (tmp_path / MODEL_FILE).write_text("not a model\n", encoding="utf-8")
    with pytest.raises(IntegrityError, match=MODEL_FILE):
        flavor.load(tmp_path, saved.options)


def test_missing_lightgbm_names_the_extra(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "lightgbm", None)
    with pytest.raises(MissingDependency) as caught:
        LightGBMFlavor().load(tmp_path, {})
    assert "modelport[lightgbm]" in str(caught.value.hint)
