"""Parity figures, thresholds, worst rows, and the data sets checked."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from modelport.core.errors import ModelportError, NotFound, ValidationError
from modelport.edge.parity import ParityError, ParityThresholds, check_parity, compare, parity_data, read_data

from .conftest import MakeBundle


def test_identical_labels_and_close_probabilities_pass() -> None:
    labels = np.array(["a", "b", "a"])
    proba = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])
    report = compare(labels, labels.copy(), proba, proba + 1e-6, thresholds=ParityThresholds(), dataset="d")
    assert report.passed
    assert report.label_agreement == 1.0
    assert report.max_proba_diff == pytest.approx(1e-6)


def test_a_flipped_label_fails_a_float_export_and_is_the_worst_row() -> None:
    native = np.array([0, 1, 1, 0])
    exported = np.array([0, 1, 0, 0])
    proba = np.array([[0.9, 0.1], [0.1, 0.9], [0.49, 0.51], [0.8, 0.2]])
    flipped = proba.copy()
    flipped[2] = [0.51, 0.49]
    inputs = [{"x": i} for i in range(4)]
    report = compare(native, exported, proba, flipped, thresholds=ParityThresholds(), dataset="d", inputs=inputs)
    assert not report.passed
    assert report.label_agreement == 0.75
    assert report.worst[0].row == 2
    assert (report.worst[0].native, report.worst[0].exported) == (1, 0)
    assert report.worst[0].inputs == {"x": 2}
    assert any("labels agree on 75.00%" in f for f in report.failures)


def test_int8_thresholds_accept_one_flip_in_a_thousand() -> None:
    native = np.zeros(1000, dtype=np.int64)
    exported = native.copy()
    exported[0] = 1
    assert not compare(native, exported, None, None, thresholds=ParityThresholds(), dataset="d").passed
    assert compare(native, exported, None, None, thresholds=ParityThresholds.for_export("int8"), dataset="d").passed


def test_values_are_compared_relative_to_their_size() -> None:
    native = np.array([1000.0, 0.5])
    report = compare(native, native + np.array([0.05, 0.0]), None, None, thresholds=ParityThresholds(), dataset="d")
    assert report.max_value_diff == pytest.approx(5e-5)
    assert report.passed
    small = compare(native, native + np.array([0.0, 0.05]), None, None, thresholds=ParityThresholds(), dataset="d")
    assert not small.passed


def test_tensor_outputs_get_argmax_agreement() -> None:
    native = np.array([[0.1, 2.0], [3.0, 0.0]])
    report = compare(native, native[:, ::-1].copy(), None, None, thresholds=ParityThresholds(), dataset="d")
    assert report.label_agreement == 0.0
    assert not report.passed


def test_report_is_json_able() -> None:
    native = np.array(["x", "y"])
    report = compare(native, np.array(["x", "x"]), None, None, thresholds=ParityThresholds(), dataset="d")
    data = json.loads(json.dumps(report.to_dict()))
    assert data["passed"] is False
    assert data["worst"][0]["row"] == 1


def test_check_parity_raises_parity_error_with_the_reports(make_bundle: MakeBundle, numeric: Any) -> None:
    frame, y = numeric
    bundle = make_bundle(LogisticRegression(max_iter=300).fit(frame, y), frame)
    other = LogisticRegression(max_iter=300).fit(frame, np.roll(y, 1))
    from modelport.bundle.flavors.sklearn import SklearnFlavor

    with pytest.raises(ParityError) as caught:
        check_parity(
            bundle.adapter,
            SklearnFlavor().adapter(other),
            bundle.manifest.signature,
            [("reference sample", frame)],
            ParityThresholds(),
        )
    error = caught.value
    assert isinstance(error, ModelportError)
    assert error.exit_code == 1
    assert "Worst rows: row " in error.message
    assert "Nothing was written" in str(error.hint)
    assert error.to_dict()["parity"][0]["passed"] is False


def test_check_data_is_read_from_csv_parquet_and_jsonl(make_bundle: MakeBundle, numeric: Any, tmp_path: Path) -> None:
    frame, y = numeric
    bundle = make_bundle(LogisticRegression(max_iter=300).fit(frame, y), frame)
    frame.head(5).to_csv(tmp_path / "rows.csv", index=False)
    frame.head(5).to_parquet(tmp_path / "rows.parquet")
    frame.head(5).to_json(tmp_path / "rows.jsonl", orient="records", lines=True)
    for name in ("rows.csv", "rows.parquet", "rows.jsonl"):
        data = read_data(tmp_path / name, bundle.manifest.signature)
        assert list(data.columns) == list(frame.columns)
    sets = parity_data(bundle, tmp_path / "rows.csv")
    assert [name for name, _ in sets] == ["reference sample", "check data"]


def test_missing_or_unknown_check_data_is_refused(numeric: Any, make_bundle: MakeBundle, tmp_path: Path) -> None:
    frame, y = numeric
    bundle = make_bundle(LogisticRegression(max_iter=300).fit(frame, y), frame)
    with pytest.raises(NotFound, match=r"nowhere\.csv"):
        parity_data(bundle, tmp_path / "nowhere.csv")
    (tmp_path / "rows.xlsx").write_text("x")
    with pytest.raises(ValidationError, match=r"unknown format '\.xlsx'"):
        parity_data(bundle, tmp_path / "rows.xlsx")


def test_int8_judges_labelled_tensors_by_labels_and_regressions_by_values() -> None:
    int8 = ParityThresholds.for_export("int8")
    logits = np.array([[0.1, 2.0], [3.0, 0.0]])
    shifted = logits + np.array([[0.5, 0.5], [0.5, 0.5]])  # same argmax, values off by 0.5
    assert compare(logits, shifted, None, None, thresholds=int8, dataset="d").passed
    assert not compare(logits, shifted, None, None, thresholds=ParityThresholds(), dataset="d").passed
    values = np.array([1.0, 2.0])
    assert not compare(values, values + 0.5, None, None, thresholds=int8, dataset="d").passed
