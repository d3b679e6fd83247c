"""Quantization: int8 and fp16 shrink MLPs and keep their answers; trees and linear ops say why they are skipped."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from modelport.bundle.io import load_bundle, save_bundle
from modelport.core.errors import Unsupported
from modelport.edge.convert import convert
from modelport.edge.quantize import TREE_REASON, quantize
from modelport.edge.runner import EdgeRunner

from .conftest import MakeBundle

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


@pytest.fixture(scope="module")
def mlp_bundle(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A scaled 256x256 MLP bundle (built once for the module) and its training frame."""
    from sklearn.datasets import make_classification

    x, y = make_classification(400, 8, n_informative=5, n_classes=3, random_state=0)
    frame = pd.DataFrame(x, columns=[f"f{i}" for i in range(8)])
    model = make_pipeline(StandardScaler(), MLPClassifier((256, 256), max_iter=40, random_state=0)).fit(frame, y)
    path = tmp_path_factory.mktemp("mlp") / "bundle"
    save_bundle(model, path, sample_input=frame)
    return load_bundle(path), frame


def test_int8_mlp_is_under_30_percent_of_float_and_agrees(mlp_bundle: Any) -> None:
    bundle, frame = mlp_bundle
    conversion = convert(bundle)
    result = quantize(conversion, "int8")
    assert result.applied
    assert result.model_bytes is not None
    assert len(result.model_bytes) <= 0.3 * len(conversion.model_bytes)
    assert "3 of 3 MatMul/Gemm" in result.note
    labels = EdgeRunner.from_bytes(result.model_bytes).predict(frame)
    assert np.mean(labels == bundle.adapter.predict(frame)) >= 0.99


def test_fp16_mlp_halves_the_weights_and_agrees(mlp_bundle: Any) -> None:
    bundle, frame = mlp_bundle
    conversion = convert(bundle)
    result = quantize(conversion, "fp16")
    assert result.applied
    assert result.model_bytes is not None
    assert len(result.model_bytes) <= 0.6 * len(conversion.model_bytes)
    runner = EdgeRunner.from_bytes(result.model_bytes)
    labels, proba = runner.run(frame)
    assert np.mean(labels == bundle.adapter.predict(frame)) >= 0.99
    assert proba is not None
    assert np.abs(proba - bundle.adapter.predict_proba(frame)).max() < 1e-2


def test_torch_mlp_int8(make_bundle: MakeBundle, numeric: Any) -> None:
    import torch

    frame, _ = numeric
    x = frame.to_numpy().astype(np.float32)
    torch.manual_seed(0)
    module = torch.nn.Sequential(torch.nn.Linear(8, 128), torch.nn.ReLU(), torch.nn.Linear(128, 3)).eval()
    bundle = make_bundle(module, x)
    result = quantize(convert(bundle), "int8")
    assert result.model_bytes is not None
    logits = EdgeRunner.from_bytes(result.model_bytes).predict(x)
    assert np.mean(logits.argmax(1) == bundle.adapter.predict(x).argmax(1)) >= 0.99


@pytest.mark.parametrize("mode", ["int8", "fp16"])
def test_tree_ensembles_are_not_quantized_and_say_why(make_bundle: MakeBundle, numeric: Any, mode: str) -> None:
    frame, y = numeric
    bundle = make_bundle(RandomForestClassifier(n_estimators=5, random_state=0).fit(frame, y), frame)
    result = quantize(convert(bundle), mode)
    assert not result.applied
    assert result.model_bytes is None
    assert result.note == TREE_REASON
    assert "split thresholds" in result.note


def test_linear_classifier_op_has_nothing_to_quantize(make_bundle: MakeBundle, numeric: Any) -> None:
    frame, y = numeric
    bundle = make_bundle(LogisticRegression(max_iter=300).fit(frame, y), frame)
    result = quantize(convert(bundle), "int8")
    assert not result.applied
    assert "no MatMul/Gemm weights" in result.note
    assert "LinearClassifier" in result.note


def test_unknown_mode_is_refused(make_bundle: MakeBundle, numeric: Any) -> None:
    frame, y = numeric
    bundle = make_bundle(LogisticRegression(max_iter=300).fit(frame, y), frame)
    with pytest.raises(Unsupported, match="'int4'"):
        quantize(convert(bundle), "int4")
