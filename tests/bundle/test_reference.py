"""Reference statistics checked against numpy, and the Parquet reference sample round trip."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from modelport.bundle.reference import (
    HISTOGRAM_BINS,
    MAX_CATEGORIES,
    MAX_SAMPLE_ROWS,
    OTHER_KEY,
    QUANTILE_LEVELS,
    compute_reference,
    read_sample,
    subset_rows,
    write_sample,
)
from modelport.bundle.signature import infer_input_signature
from modelport.core.errors import ValidationError
from modelport.core.types import OutputSpec


def _numeric_frame() -> pd.DataFrame:
    rng = np.random.default_rng(3)
    values = rng.normal(10, 2, 500)
    values[::10] = np.nan
    return pd.DataFrame({"x": values, "n": rng.integers(0, 9, 500)})


def test_numeric_stats_match_numpy() -> None:
    frame = _numeric_frame()
    stats = compute_reference(frame, infer_input_signature(frame))
    x = stats["columns"]["x"]
    finite = frame["x"].dropna().to_numpy()
    assert x["kind"] == "numeric"
    assert stats["row_count"] == 500
    assert x["count"] == 450
    assert x["missing_rate"] == pytest.approx(0.1)
    assert len(x["quantiles"]) == 101
    np.testing.assert_allclose(x["quantiles"], np.quantile(finite, QUANTILE_LEVELS))
    counts, edges = np.histogram(finite, bins=HISTOGRAM_BINS)
    assert x["histogram"]["counts"] == counts.tolist()
    np.testing.assert_allclose(x["histogram"]["edges"], edges)
    assert sum(x["histogram"]["counts"]) == 450
    assert x["mean"] == pytest.approx(finite.mean())
    assert x["std"] == pytest.approx(finite.std())
    assert (x["min"], x["max"]) == (pytest.approx(finite.min()), pytest.approx(finite.max()))
    assert stats["columns"]["n"]["missing_rate"] == 0.0


def test_stats_are_strict_json() -> None:
    frame = pd.DataFrame({"x": [np.nan, np.nan], "s": ["a", None], "b": [True, False]})
    stats = compute_reference(frame, infer_input_signature(frame))
    assert json.loads(json.dumps(stats, allow_nan=False)) == stats
    assert stats["columns"]["x"]["quantiles"] is None
    assert stats["columns"]["x"]["missing_rate"] == 1.0


def test_infinities_are_present_but_left_out_of_the_distribution() -> None:
    frame = pd.DataFrame({"x": [1.0, 2.0, np.inf, -np.inf]})
    x = compute_reference(frame, infer_input_signature(frame))["columns"]["x"]
    assert (x["count"], x["missing_rate"], x["max"]) == (4, 0.0, 2.0)


def test_categorical_frequencies_and_missing_rate() -> None:
    frame = pd.DataFrame(
        {
            "plan": pd.Series(["pro", "pro", "basic", None], dtype="str"),
            "legacy": pd.Series(["a", "b", "b", "b"], dtype=object),
            "size": pd.Categorical(["s", "m", "m", "m"], categories=["s", "m", "l"]),
            "flag": [True, True, False, True],
        }
    )
    columns = compute_reference(frame, infer_input_signature(frame))["columns"]
    assert columns["plan"] == {
        "kind": "categorical",
        "count": 3,
        "missing_rate": 0.25,
        "frequencies": {"pro": pytest.approx(2 / 3), "basic": pytest.approx(1 / 3)},
    }
    assert columns["legacy"]["frequencies"] == {"b": 0.75, "a": 0.25}
    assert columns["size"]["frequencies"] == {"m": 0.75, "s": 0.25}
    assert columns["flag"]["frequencies"] == {"True": 0.75, "False": 0.25}


def test_long_tail_of_categories_is_summed_under_other() -> None:
    values = [f"v{i}" for i in range(MAX_CATEGORIES + 50)] + ["v0"] * 50
    frame = pd.DataFrame({"c": values})
    frequencies = compute_reference(frame, infer_input_signature(frame))["columns"]["c"]["frequencies"]
    assert len(frequencies) == MAX_CATEGORIES + 1
    assert frequencies["v0"] == pytest.approx(51 / len(values))
    assert frequencies[OTHER_KEY] == pytest.approx(50 / len(values))
    assert sum(frequencies.values()) == pytest.approx(1.0)


def test_datetimes_are_numeric_epoch_seconds() -> None:
    frame = pd.DataFrame({"t": pd.to_datetime(["1970-01-01", "1970-01-02", None])})
    t = compute_reference(frame, infer_input_signature(frame))["columns"]["t"]
    assert (t["kind"], t["min"], t["max"]) == ("numeric", 0.0, 86_400.0)
    assert t["missing_rate"] == pytest.approx(1 / 3)


def test_tensor_columns_are_per_feature() -> None:
    data = np.arange(30, dtype="float64").reshape(10, 3)
    stats = compute_reference(data, infer_input_signature(data))
    assert list(stats["columns"]) == ["input[0]", "input[1]", "input[2]"]
    np.testing.assert_allclose(stats["columns"]["input[1]"]["quantiles"], np.quantile(data[:, 1], QUANTILE_LEVELS))


def test_image_like_tensor_is_one_summary() -> None:
    data = {"pixels": np.ones((4, 8, 8), dtype="uint8")}
    stats = compute_reference(data, infer_input_signature(data))
    assert list(stats["columns"]) == ["pixels"]
    assert stats["columns"]["pixels"]["count"] == 4 * 64


def test_prediction_and_probability_stats() -> None:
    frame = pd.DataFrame({"x": [0.1, 0.2, 0.3, 0.4]})
    signature = infer_input_signature(frame).model_copy(
        update={
            "outputs": (
                OutputSpec(name="predict", kind="label", dtype="str", classes=("no", "yes")),
                OutputSpec(
                    name="predict_proba", kind="probabilities", dtype="float64", shape=(-1, 2), classes=("no", "yes")
                ),
            )
        }
    )
    proba = np.array([[0.9, 0.1], [0.6, 0.4], [0.3, 0.7], [0.2, 0.8]])
    stats = compute_reference(frame, signature, predictions=np.array(["no", "no", "yes", "yes"]), probabilities=proba)
    assert stats["predictions"]["frequencies"] == {"no": 0.5, "yes": 0.5}
    assert set(stats["probabilities"]) == {"no", "yes"}
    assert stats["probabilities"]["yes"]["mean"] == pytest.approx(proba[:, 1].mean())


def test_regression_predictions_are_numeric() -> None:
    frame = pd.DataFrame({"x": [1.0, 2.0]})
    signature = infer_input_signature(frame).model_copy(
        update={"outputs": (OutputSpec(name="predict", kind="regression", dtype="float64"),)}
    )
    stats = compute_reference(frame, signature, predictions=np.array([3.0, 5.0]))
    assert (stats["predictions"]["kind"], stats["predictions"]["mean"]) == ("numeric", 4.0)


def test_missing_column_is_named() -> None:
    frame = pd.DataFrame({"x": [1.0], "y": [2.0]})
    with pytest.raises(ValidationError, match=r"'y'"):
        compute_reference(frame[["x"]], infer_input_signature(frame))


def test_tabular_signature_refuses_arrays() -> None:
    frame = pd.DataFrame({"x": [1.0]})
    with pytest.raises(ValidationError, match=r"tabular"):
        compute_reference(np.zeros((1, 1)), infer_input_signature(frame))


def test_subset_is_capped_seeded_and_in_order() -> None:
    frame = pd.DataFrame({"i": np.arange(5000)})
    first, second = subset_rows(frame, 100), subset_rows(frame, 100)
    assert isinstance(first, pd.DataFrame)
    assert len(first) == 100
    assert first["i"].is_monotonic_increasing
    pd.testing.assert_frame_equal(first, second)
    assert subset_rows(frame.head(10), 100) is not None


def test_sample_parquet_round_trip_keeps_dtypes(tmp_path: Path, customers: Any) -> None:
    frame, _ = customers
    path = tmp_path / "sample.parquet"
    signature = infer_input_signature(frame)
    write_sample(frame, signature, path)
    back = read_sample(path, signature)
    assert isinstance(back, pd.DataFrame)
    pd.testing.assert_frame_equal(back, frame.reset_index(drop=True), check_dtype=True)


def test_sample_keeps_only_signature_columns_and_caps_rows(tmp_path: Path) -> None:
    frame = pd.DataFrame({"x": np.arange(MAX_SAMPLE_ROWS * 2, dtype="float64")})
    signature = infer_input_signature(frame)
    frame["unused"] = 1
    write_sample(frame, signature, tmp_path / "s.parquet")
    back = read_sample(tmp_path / "s.parquet")
    assert isinstance(back, pd.DataFrame)
    assert list(back.columns) == ["x"]
    assert len(back) == MAX_SAMPLE_ROWS


@pytest.mark.parametrize(
    "data",
    [
        np.arange(24, dtype="float32").reshape(6, 4),
        np.arange(6, dtype="int64"),
        np.arange(48, dtype="uint8").reshape(2, 3, 4, 2),
        np.array(["a b", "c"]),
    ],
)
def test_tensor_sample_round_trip(tmp_path: Path, data: np.ndarray) -> None:
    write_sample(data, infer_input_signature(data), tmp_path / "t.parquet")
    back = read_sample(tmp_path / "t.parquet")
    assert isinstance(back, np.ndarray)
    np.testing.assert_array_equal(back, data)
    assert back.dtype.kind == data.dtype.kind


def test_dict_tensor_sample_round_trip(tmp_path: Path) -> None:
    data = {"ids": np.arange(12).reshape(3, 4), "mask": np.ones((3, 4), dtype=bool)}
    write_sample(data, infer_input_signature(data), tmp_path / "d.parquet")
    back = read_sample(tmp_path / "d.parquet")
    assert isinstance(back, dict)
    for name, array in data.items():
        np.testing.assert_array_equal(back[name], array)
        assert back[name].dtype == array.dtype
