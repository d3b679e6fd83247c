"""Holdout metrics by output kind, and the champion/challenger tolerance rule."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelport.bundle.io import load_bundle
from modelport.core.errors import NotFound, Unsupported, ValidationError
from modelport.governance.holdout import load_holdout
from modelport.governance.metrics import regressions, score, task_of
from modelport.runtime.predictor import Predictor

from .support import diabetes_frame, iris_frame


def test_classifiers_get_accuracy_f1_and_auc(bundles: dict[str, Path]) -> None:
    predictor = Predictor(load_bundle(bundles["good"]))
    assert task_of(predictor.signature) == "classification"
    metrics = score(predictor, load_holdout(iris_frame()))
    assert set(metrics) == {"accuracy", "f1", "auc"}
    assert 0.9 < metrics["accuracy"] <= 1.0
    assert 0.9 < metrics["f1"] <= 1.0
    assert metrics["auc"] > 0.95
    weak = score(Predictor(load_bundle(bundles["weak"])), load_holdout(iris_frame()))
    assert weak["accuracy"] < metrics["accuracy"] - 0.1


def test_labels_compare_as_text_and_auc_is_left_out_when_classes_differ(bundles: dict[str, Path]) -> None:
    frame = iris_frame()
    frame = frame[frame["target"] < 2].copy()
    frame["target"] = frame["target"].astype(str)  # read from a CSV as text, say
    metrics = score(Predictor(load_bundle(bundles["good"])), load_holdout(frame))
    assert metrics["accuracy"] > 0.9  # "0" in the holdout equals the model's 0
    assert "auc" not in metrics  # the model has three classes, the holdout two: no defined one-vs-rest AUC


def test_regressors_get_mae_and_rmse(bundles: dict[str, Path]) -> None:
    predictor = Predictor(load_bundle(bundles["ridge"]))
    assert task_of(predictor.signature) == "regression"
    metrics = score(predictor, load_holdout(diabetes_frame()))
    assert set(metrics) == {"mae", "rmse"}
    assert 0 < metrics["mae"] <= metrics["rmse"]


def test_the_tolerance_is_absolute_for_scores_and_relative_for_errors() -> None:
    champion = {"accuracy": 0.90, "auc": 0.95}
    assert regressions(champion, {"accuracy": 0.895, "auc": 0.96}, 0.01) == []
    assert regressions(champion, {"accuracy": 0.85, "auc": 0.96}, 0.01) == ["accuracy 0.8500 < champion 0.9000 - 0.01"]
    assert regressions({"mae": 10.0}, {"mae": 10.09}, 0.01) == []
    assert regressions({"mae": 10.0}, {"mae": 10.2}, 0.01) == ["mae 10.2 > champion 10 x (1 + 0.01)"]


def test_holdouts_are_read_from_files_and_checked(tmp_path: Path) -> None:
    frame = iris_frame()
    frame.to_csv(tmp_path / "h.csv", index=False)
    frame.to_parquet(tmp_path / "h.parquet")
    assert len(load_holdout(tmp_path / "h.csv").frame) == len(load_holdout(str(tmp_path / "h.parquet")).frame) == 150
    with pytest.raises(ValidationError, match="no target column 'label'") as info:
        load_holdout(frame, "label")
    assert "--target" in str(info.value.hint)
    with pytest.raises(NotFound, match="does not exist"):
        load_holdout(tmp_path / "missing.csv")
    (tmp_path / "h.json").write_text("{}")
    with pytest.raises(Unsupported, match="neither CSV nor Parquet"):
        load_holdout(tmp_path / "h.json")
    holed = frame.astype({"target": "float64"})
    holed.loc[3, "target"] = None
    with pytest.raises(ValidationError, match="missing in row 3"):
        load_holdout(holed)
    with pytest.raises(ValidationError, match="has 0 rows"):
        load_holdout(frame.iloc[:0])
