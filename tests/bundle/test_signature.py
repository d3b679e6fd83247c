"""Signature inference: every column type, tensors, and outputs inferred by predicting on the sample."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from modelport.bundle.flavors.pickle import ObjectAdapter
from modelport.bundle.flavors.sklearn import SklearnAdapter
from modelport.bundle.signature import MAX_CATEGORIES, infer_input_signature, infer_outputs
from modelport.core.errors import Unsupported, ValidationError


def _column(frame: pd.DataFrame, name: str) -> Any:
    return next(c for c in infer_input_signature(frame).columns if c.name == name)


@pytest.mark.parametrize(
    ("values", "dtype", "expected_type", "expected_dtype", "nullable"),
    [
        ([1.5, 2.5], "float64", "float", "float64", False),
        ([1.5, np.nan], "float64", "float", "float64", True),
        ([1.5, 2.5], "float32", "float", "float32", False),
        ([1, 2], "int64", "int", "int64", False),
        ([1, 2], "int32", "int", "int32", False),
        ([1, None], "Int64", "int", "Int64", True),
        ([True, False], "bool", "bool", "bool", False),
        ([True, None], "boolean", "bool", "boolean", True),
        (["a", "b"], "str", "string", "str", False),
        (["a", None], "str", "string", "str", True),
        (["a", "b"], object, "string", "object", False),
        (["a", None], object, "string", "object", True),
        ([1, 2], object, "int", "int64", False),
        ([1.5, None], object, "float", "float64", True),
        ([True, False], object, "bool", "bool", False),
        (["2024-01-01", "2024-02-01"], "datetime64[ns]", "datetime", "datetime64[ns]", False),
        (["2024-01-01", None], "datetime64[ns]", "datetime", "datetime64[ns]", True),
    ],
)
def test_column_types(values: list[Any], dtype: Any, expected_type: str, expected_dtype: str, nullable: bool) -> None:
    spec = _column(pd.DataFrame({"x": pd.Series(values, dtype=dtype)}), "x")
    assert (spec.type, spec.dtype, spec.nullable) == (expected_type, expected_dtype, nullable)


def test_pandas3_default_string_dtype_is_a_string_column_with_categories() -> None:
    frame = pd.DataFrame({"city": ["Oslo", "Lima", "Oslo", None]})
    spec = _column(frame, "city")
    assert spec.type == "string"
    assert spec.dtype == str(frame["city"].dtype)
    assert spec.categories == ("Lima", "Oslo")
    assert spec.nullable


def test_timezone_aware_datetime() -> None:
    frame = pd.DataFrame({"t": pd.date_range("2024-01-01", periods=3, tz="Europe/Oslo")})
    spec = _column(frame, "t")
    assert spec.type == "datetime"
    assert "Europe/Oslo" in spec.dtype


def test_categorical_keeps_declared_categories() -> None:
    frame = pd.DataFrame({"size": pd.Categorical(["s", "m"], categories=["s", "m", "l"])})
    spec = _column(frame, "size")
    assert (spec.type, spec.dtype, spec.categories) == ("category", "category", ("s", "m", "l"))


def test_many_distinct_strings_record_no_categories() -> None:
    frame = pd.DataFrame({"id": [f"user-{i}" for i in range(MAX_CATEGORIES + 1)]})
    assert _column(frame, "id").categories is None


def test_column_order_is_kept() -> None:
    frame = pd.DataFrame({"b": [1], "a": [2.0], "c": ["x"]})
    assert infer_input_signature(frame).column_names == ("b", "a", "c")


def test_mixed_object_column_is_refused_naming_it() -> None:
    with pytest.raises(ValidationError, match=r"'mixed'") as info:
        infer_input_signature(pd.DataFrame({"mixed": pd.Series([1, "a", 2.5], dtype=object)}))
    assert info.value.hint


@pytest.mark.parametrize(
    ("frame", "error", "match"),
    [
        (pd.DataFrame({"a": pd.Series([], dtype="float64")}), ValidationError, "at least one row"),
        (pd.DataFrame({0: [1.0]}), Unsupported, "not a string"),
        (pd.DataFrame([[1, 2]], columns=["a", "a"]), ValidationError, "duplicate column 'a'"),
        (pd.DataFrame({"d": pd.Series([pd.Timedelta(1, "s")])}), ValidationError, "'d'"),
    ],
)
def test_bad_frames_are_refused(frame: pd.DataFrame, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        infer_input_signature(frame)


def test_ndarray_gives_a_tensor_with_a_free_batch_dimension() -> None:
    signature = infer_input_signature(np.zeros((5, 3, 2), dtype="float32"))
    assert signature.kind == "tensor"
    (tensor,) = signature.tensors
    assert (tensor.name, tensor.dtype, tensor.shape) == ("input", "float32", (-1, 3, 2))


def test_dict_of_arrays_gives_named_tensors() -> None:
    signature = infer_input_signature({"ids": np.zeros((4, 7), dtype="int64"), "mask": np.ones((4, 7), dtype=bool)})
    assert [(t.name, t.dtype, t.shape) for t in signature.tensors] == [
        ("ids", "int64", (-1, 7)),
        ("mask", "bool", (-1, 7)),
    ]


def test_string_array_tensor() -> None:
    (tensor,) = infer_input_signature(np.array(["good film", "bad film"])).tensors
    assert (tensor.dtype, tensor.shape) == ("str", (-1,))


@pytest.mark.parametrize(
    "sample",
    [np.zeros((0, 3)), np.float64(1.0).reshape(()), np.array([{"a": 1}], dtype=object), [[1, 2]], {"a": [1, 2]}],
)
def test_unusable_samples_are_refused(sample: Any) -> None:
    with pytest.raises(ValidationError):
        infer_input_signature(sample)


def test_classifier_outputs_labels_and_probabilities_with_class_names(customers: Any) -> None:
    from sklearn.tree import DecisionTreeClassifier

    frame, target = customers
    model = DecisionTreeClassifier(max_depth=3).fit(frame[["age", "income"]].fillna(0), target)
    outputs = infer_outputs(SklearnAdapter(model), frame[["age", "income"]].fillna(0).head(5))
    predict, proba = outputs
    assert (predict.name, predict.kind, predict.dtype, predict.classes) == (
        "predict",
        "label",
        "str",
        ("churn", "stay"),
    )
    assert (proba.name, proba.kind, proba.shape, proba.classes) == (
        "predict_proba",
        "probabilities",
        (-1, 2),
        ("churn", "stay"),
    )


def test_integer_classes_become_plain_ints(iris: Any) -> None:
    from sklearn.linear_model import LogisticRegression

    x, y = iris
    predict, _ = infer_outputs(SklearnAdapter(LogisticRegression(max_iter=300).fit(x, y)), x[:3])
    assert predict.classes == (0, 1, 2)
    assert all(type(c) is int for c in predict.classes)


def test_regressor_outputs_regression_values(iris: Any) -> None:
    from sklearn.linear_model import Ridge

    x, _ = iris
    (predict,) = infer_outputs(SklearnAdapter(Ridge().fit(x[:, 1:], x[:, 0])), x[:3, 1:])
    assert (predict.kind, predict.dtype, predict.shape, predict.classes) == ("regression", "float64", (-1,), None)


def test_clusterer_outputs_labels_without_classes(iris: Any) -> None:
    from sklearn.cluster import KMeans

    x, _ = iris
    (predict,) = infer_outputs(SklearnAdapter(KMeans(n_clusters=2, n_init=1, random_state=0).fit(x)), x[:3])
    assert (predict.kind, predict.classes) == ("label", None)


def test_multi_dimensional_array_output_is_a_tensor() -> None:
    class Embed:
        def predict(self, data: np.ndarray) -> np.ndarray:
            return np.zeros((len(data), 4, 2), dtype="float32")

    (predict,) = infer_outputs(ObjectAdapter(Embed(), input_format="array"), np.zeros((3, 2)))
    assert (predict.kind, predict.dtype, predict.shape) == ("tensor", "float32", (-1, 4, 2))


def test_model_failing_on_its_sample_is_a_validation_error() -> None:
    class Broken:
        def predict(self, data: Any) -> np.ndarray:
            raise KeyError("income")

    with pytest.raises(ValidationError, match=r"failed to predict on sample_input: KeyError") as info:
        infer_outputs(ObjectAdapter(Broken()), np.zeros((2, 2)))
    assert info.value.hint
