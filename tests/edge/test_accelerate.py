"""The serving fast path: ONNX Runtime only when it answers exactly like the native model, else the reason."""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

from modelport.bundle.flavors.onnx import OnnxAdapter
from modelport.edge.accelerate import accelerate, try_accelerate
from modelport.runtime.predictor import Predictor

from .conftest import MakeBundle


def pipeline(final: Any) -> Pipeline:
    pre = ColumnTransformer(
        [
            ("num", make_pipeline(SimpleImputer(), StandardScaler()), ["age", "spend", "visits"]),
            ("plan", OneHotEncoder(handle_unknown="ignore"), ["plan"]),
        ]
    )
    return Pipeline([("pre", pre), ("clf", final)])


def test_sklearn_pipeline_is_served_by_onnx_runtime_with_identical_answers(
    make_bundle: MakeBundle, customers: Any
) -> None:
    frame, label, _ = customers
    bundle = make_bundle(pipeline(LogisticRegression(max_iter=500)).fit(frame, label), frame)
    fast = accelerate(bundle)
    assert fast is not None
    adapter, note = fast
    assert isinstance(adapter, OnnxAdapter)
    assert note == "onnxruntime (sklearn Pipeline(ColumnTransformer, LogisticRegression), float32)"
    served = Predictor(bundle, adapter=adapter, accelerated=note)
    native = Predictor(bundle)
    assert list(served.predict(frame)) == list(native.predict(frame))
    np.testing.assert_allclose(served.predict_proba(frame), native.predict_proba(frame), atol=1e-5)
    assert list(served.predict([frame.iloc[0].to_dict()])) == list(native.predict(frame.head(1)))


def test_forest_that_needs_float64_is_still_accelerated(make_bundle: MakeBundle, customers: Any) -> None:
    frame, label, _ = customers
    model = pipeline(RandomForestClassifier(n_estimators=10, max_depth=6, random_state=0)).fit(frame, label)
    decision = try_accelerate(make_bundle(model, frame))
    assert decision.accelerated
    assert decision.note.endswith("float64)")


def test_numeric_frame_and_boosters_are_accelerated(make_bundle: MakeBundle, numeric: Any) -> None:
    import lightgbm
    import xgboost

    frame, y = numeric
    models = [
        make_pipeline(StandardScaler(), LogisticRegression(max_iter=300)).fit(frame, y),
        xgboost.XGBClassifier(n_estimators=8, max_depth=3).fit(frame, y),
        lightgbm.LGBMRegressor(n_estimators=8, verbose=-1).fit(frame, frame["f0"] * 2.0),
    ]
    for model in models:
        bundle = make_bundle(model, frame)
        decision = try_accelerate(bundle)
        assert decision.adapter is not None, decision.note
        served = Predictor(bundle, adapter=decision.adapter, accelerated=decision.note)
        np.testing.assert_allclose(served.predict(frame), Predictor(bundle).predict(frame), rtol=1e-5)


def test_torch_is_served_natively_and_the_reason_is_logged(
    make_bundle: MakeBundle, numeric: Any, caplog: pytest.LogCaptureFixture
) -> None:
    import torch

    x = numeric[0].to_numpy().astype(np.float32)
    bundle = make_bundle(torch.nn.Sequential(torch.nn.Linear(8, 2)).eval(), x)
    with caplog.at_level(logging.INFO, logger="modelport.edge.accelerate"):
        assert accelerate(bundle) is None
    assert "served natively: flavor 'torch' is served natively" in caplog.text


def test_unconvertible_step_gives_the_reason(make_bundle: MakeBundle, numeric: Any) -> None:
    frame, y = numeric
    model = Pipeline([("abs", FunctionTransformer(np.abs)), ("clf", LogisticRegression(max_iter=300))]).fit(frame, y)
    decision = try_accelerate(make_bundle(model, frame))
    assert decision.adapter is None
    assert decision.note.startswith("ONNX conversion unavailable: Cannot export model (Pipeline) → step 'abs'")


class _OffByOne:
    """A native adapter whose first answer differs from its model's: ONNX can never match it."""

    def __init__(self, inner: Any) -> None:
        self.model = inner.model
        self.input_format = inner.input_format
        self.classes = inner.classes
        self.has_proba = inner.has_proba
        self._inner = inner

    def predict(self, data: Any) -> np.ndarray:
        answers = np.asarray(self._inner.predict(data)).copy()
        answers[0] = self.classes[0] if answers[0] != self.classes[0] else self.classes[1]
        return answers

    def predict_proba(self, data: Any) -> np.ndarray:
        return np.asarray(self._inner.predict_proba(data))


def test_parity_failure_keeps_the_native_model(make_bundle: MakeBundle, numeric: Any) -> None:
    frame, y = numeric
    bundle = make_bundle(LogisticRegression(max_iter=300).fit(frame, y), frame)
    decision = try_accelerate(dataclasses.replace(bundle, adapter=_OffByOne(bundle.adapter)))
    assert decision.adapter is None
    assert decision.note.startswith("ONNX parity failed on the reference sample (labels agree on 99.75%")


def test_bundle_without_reference_sample_is_served_natively(make_bundle: MakeBundle, numeric: Any) -> None:
    frame, y = numeric
    bundle = make_bundle(LogisticRegression(max_iter=300).fit(frame, y), pd.DataFrame(frame))
    (bundle.path / "reference" / "sample.parquet").unlink()
    decision = try_accelerate(bundle)
    assert decision.adapter is None
    assert "no reference sample" in decision.note
