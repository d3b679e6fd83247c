"""Conversion to ONNX: parity with the native model per framework and pipeline kind, and refusals."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import (
    GradientBoostingClassifier,
    HistGradientBoostingClassifier,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, OrdinalEncoder, SplineTransformer, StandardScaler
from sklearn.tree import DecisionTreeClassifier

from modelport.bundle.io import read_reference_sample
from modelport.bundle.loaded import LoadedBundle
from modelport.core.errors import Unsupported
from modelport.edge.convert import convert
from modelport.edge.export import faithful_conversion
from modelport.edge.parity import ParityReport, ParityThresholds, run_comparison
from modelport.edge.runner import EdgeRunner

from .conftest import MakeBundle

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def parity(bundle: LoadedBundle) -> ParityReport:
    """The float export's parity on the reference sample (float64 fallback included, as export does)."""
    sample = read_reference_sample(bundle.path)
    assert sample is not None
    _, reports, _ = faithful_conversion(bundle, [("reference sample", sample)])
    return reports[0]


def float32_parity(bundle: LoadedBundle) -> ParityReport:
    runner = EdgeRunner.from_bytes(convert(bundle).model_bytes)
    sample = read_reference_sample(bundle.path)
    return run_comparison(
        bundle.adapter,
        runner,
        bundle.manifest.signature,
        sample,
        dataset="reference sample",
        thresholds=ParityThresholds(),
    )


def column_pipeline(final: Any) -> Pipeline:
    numbers = make_pipeline(SimpleImputer(), StandardScaler())
    return Pipeline(
        [
            (
                "pre",
                ColumnTransformer(
                    [
                        ("num", numbers, ["age", "spend", "visits"]),
                        ("plan", OneHotEncoder(handle_unknown="ignore"), ["plan"]),
                    ]
                ),
            ),
            ("model", final),
        ]
    )


@pytest.mark.parametrize(
    "final",
    [
        LogisticRegression(max_iter=500),
        DecisionTreeClassifier(max_depth=5, random_state=0),
        RandomForestClassifier(n_estimators=10, max_depth=6, random_state=0),
        GradientBoostingClassifier(n_estimators=10, random_state=0),
        MLPClassifier((16,), max_iter=300, random_state=0),
    ],
    ids=["logistic", "tree", "forest", "boosting", "mlp"],
)
def test_column_transformer_pipelines_with_strings_match_native(
    make_bundle: MakeBundle, customers: Any, final: Any
) -> None:
    frame, label, _ = customers
    bundle = make_bundle(column_pipeline(final).fit(frame, label), frame)
    report = parity(bundle)
    assert report.passed, report.failures
    assert report.label_agreement == 1.0
    assert report.max_proba_diff is not None
    assert report.max_proba_diff < 1e-5


def test_column_layout_has_one_string_input_per_text_column(make_bundle: MakeBundle, customers: Any) -> None:
    frame, label, _ = customers
    bundle = make_bundle(column_pipeline(LogisticRegression(max_iter=500)).fit(frame, label), frame)
    conversion = convert(bundle)
    assert conversion.spec.layout == "columns"
    assert [(i.name, i.dtype) for i in conversion.spec.inputs] == [
        ("age", "float32"),
        ("plan", "string"),
        ("visits", "int64"),
        ("spend", "float32"),
    ]
    assert conversion.spec.classes == ("churn", "stay")
    assert conversion.description == "sklearn Pipeline(ColumnTransformer, LogisticRegression)"


def test_ordinal_encoder_pipeline_matches_native(make_bundle: MakeBundle, customers: Any) -> None:
    frame, label, _ = customers
    encoder = OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1)
    pre = ColumnTransformer([("num", SimpleImputer(), ["age", "spend", "visits"]), ("plan", encoder, ["plan"])])
    model = Pipeline([("pre", pre), ("forest", RandomForestClassifier(n_estimators=8, random_state=0))])
    report = parity(make_bundle(model.fit(frame, label), frame))
    assert report.passed, report.failures


def test_scaled_linear_model_on_numeric_frame_takes_one_matrix(make_bundle: MakeBundle, numeric: Any) -> None:
    frame, y = numeric
    bundle = make_bundle(make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(frame, y), frame)
    conversion = convert(bundle)
    assert conversion.spec.layout == "matrix"
    assert conversion.spec.inputs[0].sources == tuple(frame.columns)
    assert parity(bundle).passed


def test_model_trained_on_arrays_takes_its_tensor(make_bundle: MakeBundle, numeric: Any) -> None:
    frame, y = numeric
    x = frame.to_numpy()
    bundle = make_bundle(MLPClassifier((8,), max_iter=200, random_state=0).fit(x, y), x)
    assert convert(bundle).spec.layout == "tensors"
    assert parity(bundle).passed


def test_regressor_values_match_and_come_back_flat(make_bundle: MakeBundle, customers: Any) -> None:
    frame, _, target = customers
    bundle = make_bundle(column_pipeline(LinearRegression()).fit(frame, target), frame)
    runner = EdgeRunner.from_bytes(convert(bundle).model_bytes)
    assert runner.predict(frame.head(5)).shape == (5,)
    report = parity(bundle)
    assert report.passed, report.failures
    assert report.label_agreement is None


def test_forest_after_imputer_and_scaler_falls_back_to_float64(make_bundle: MakeBundle, customers: Any) -> None:
    frame, label, _ = customers
    model = column_pipeline(RandomForestClassifier(n_estimators=10, max_depth=6, random_state=0)).fit(frame, label)
    bundle = make_bundle(model, frame)
    narrow = float32_parity(bundle)  # one row sits a float32 step from a split after float32 scaling
    assert not narrow.passed
    assert narrow.worst[0].row == 295
    sample = read_reference_sample(bundle.path)
    conversion, reports, notes = faithful_conversion(bundle, [("reference sample", sample)])
    assert conversion.precision == "float64"
    assert reports[0].passed
    assert "float64" in notes[0]


def test_deep_regression_forest_matches_native(make_bundle: MakeBundle, customers: Any) -> None:
    frame, _, target = customers
    model = Pipeline(
        [
            ("pre", ColumnTransformer([("num", StandardScaler(), ["age", "visits"])])),
            ("forest", RandomForestRegressor(n_estimators=5, random_state=0)),
        ]
    )
    report = parity(make_bundle(model.fit(frame, target), frame))
    assert report.passed, report.failures


def test_xgboost_classifier_and_regressor_match_native(make_bundle: MakeBundle, numeric: Any) -> None:
    import xgboost

    frame, y = numeric
    classifier = xgboost.XGBClassifier(n_estimators=10, max_depth=3).fit(frame, y)
    assert parity(make_bundle(classifier, frame)).passed
    regressor = xgboost.XGBRegressor(n_estimators=10, max_depth=3).fit(frame.to_numpy(), frame["f0"] * 2.0)
    assert parity(make_bundle(regressor, frame.to_numpy())).passed


def test_lightgbm_categorical_columns_are_encoded_inside_the_graph(make_bundle: MakeBundle) -> None:
    import lightgbm

    rng = np.random.default_rng(0)
    n = 300
    frame = pd.DataFrame(
        {
            "a": rng.normal(size=n),
            "colour": pd.Categorical(rng.choice(["red", "green", "blue"], n)),
            "b": rng.normal(size=n),
        }
    )
    label = np.where(frame["colour"].isin(["red"]) ^ (frame["a"] > 0), "yes", "no")
    model = lightgbm.LGBMClassifier(n_estimators=15, min_child_samples=5, verbose=-1).fit(frame, label)
    bundle = make_bundle(model, frame)
    conversion = convert(bundle)
    assert conversion.spec.layout == "columns"
    assert [i.dtype for i in conversion.spec.inputs] == ["float32", "string", "float32"]
    report = parity(bundle)
    assert report.passed, report.failures
    assert report.label_agreement == 1.0


def test_lightgbm_regressor_matches_native(make_bundle: MakeBundle, numeric: Any) -> None:
    import lightgbm

    frame, _ = numeric
    model = lightgbm.LGBMRegressor(n_estimators=15, verbose=-1).fit(frame, frame["f1"] * 3.0)
    assert parity(make_bundle(model, frame)).passed


def test_torch_module_matches_native(make_bundle: MakeBundle, numeric: Any) -> None:
    import torch

    frame, _ = numeric
    x = frame.to_numpy().astype(np.float32)
    torch.manual_seed(0)
    module = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3)).eval()
    bundle = make_bundle(module, x)
    conversion = convert(bundle)
    assert conversion.spec.task == "tensor"
    report = parity(bundle)
    assert report.passed, report.failures
    assert report.label_agreement == 1.0  # argmax of the logits


def test_onnx_bundle_passes_through_with_a_derived_spec(make_bundle: MakeBundle, numeric: Any) -> None:
    from skl2onnx import to_onnx

    frame, y = numeric
    x = frame.to_numpy().astype(np.float32)
    model = LogisticRegression(max_iter=500).fit(x, y)
    proto = to_onnx(model, x[:2], options={id(model): {"zipmap": False}})
    bundle = make_bundle(proto, x)
    conversion = convert(bundle)
    assert conversion.framework == "onnx"
    assert conversion.spec.task == "classifier"
    assert parity(bundle).passed


def refusal(make_bundle: MakeBundle, model: Any, sample: Any) -> str:
    bundle = make_bundle(model, sample)
    with pytest.raises(Unsupported) as caught:
        convert(bundle)
    assert caught.value.hint
    return str(caught.value)


def test_function_transformer_is_refused_naming_the_step(make_bundle: MakeBundle, numeric: Any) -> None:
    frame, y = numeric
    model = Pipeline([("log", FunctionTransformer(np.abs)), ("clf", LogisticRegression(max_iter=300))]).fit(frame, y)
    message = refusal(make_bundle, model, frame)
    assert "step 'log'" in message
    assert "FunctionTransformer" in message
    assert "absolute" in message
    assert "serve the native bundle" in message


def test_step_without_converter_is_refused_naming_it(make_bundle: MakeBundle, numeric: Any) -> None:
    frame, y = numeric
    model = Pipeline([("splines", SplineTransformer(n_knots=3)), ("clf", LogisticRegression(max_iter=300))])
    message = refusal(make_bundle, model.fit(frame, y), frame)
    assert "step 'splines'" in message
    assert "SplineTransformer" in message
    assert "no ONNX converter" in message


def test_converter_failure_names_the_failing_step(make_bundle: MakeBundle, numeric: Any) -> None:
    frame, y = numeric
    model = Pipeline([("scale", StandardScaler()), ("hgb", HistGradientBoostingClassifier(max_iter=5))]).fit(frame, y)
    with pytest.raises(Unsupported) as caught:  # skl2onnx 1.20 fails on scikit-learn 1.9's HistGradientBoosting
        convert(make_bundle(model, frame))
    assert "step 'hgb' (HistGradientBoostingClassifier)" in caught.value.message
    assert len(caught.value.message) < 600  # the converter's 20,000-line message is cut to its first line


def test_text_and_numbers_without_column_transformer_are_refused(make_bundle: MakeBundle, customers: Any) -> None:
    frame, label, _ = customers
    model = make_pipeline(OneHotEncoder(handle_unknown="ignore"), LogisticRegression()).fit(
        frame[["plan", "age"]], label
    )
    message = refusal(make_bundle, model, frame[["plan", "age"]])
    assert "'plan'" in message
    assert "ColumnTransformer" in message


def test_xgboost_categorical_splits_are_refused(make_bundle: MakeBundle) -> None:
    import xgboost

    frame = pd.DataFrame({"a": np.arange(60.0), "c": pd.Categorical(["x", "y", "z"] * 20)})
    model = xgboost.XGBClassifier(n_estimators=3, enable_categorical=True, tree_method="hist")
    message = refusal(make_bundle, model.fit(frame, np.arange(60) % 2), frame)
    assert "categorical feature 'c'" in message


def test_flavor_without_converter_is_refused(make_bundle: MakeBundle, numeric: Any) -> None:
    frame, y = numeric
    bundle = make_bundle(LogisticRegression(max_iter=300).fit(frame, y), frame)
    python_bundle = dataclasses.replace(bundle, manifest=bundle.manifest.model_copy(update={"flavor": "python"}))
    with pytest.raises(Unsupported, match="flavor 'python' has no ONNX converter"):
        convert(python_bundle)
