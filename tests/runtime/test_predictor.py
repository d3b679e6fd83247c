"""The Predictor: predictions identical to the model's own, named outputs, and micro-batch helpers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from runtime_helpers import SklearnLikeAdapter, float_signature, make_bundle

from modelport.bundle.flavors.base import InputFormat, ModelInput
from modelport.core.errors import ModelportError, Unsupported, ValidationError
from modelport.core.types import Signature, TensorSpec
from modelport.runtime.predictor import Predictor


def iris_predictor(model: Any, frame: pd.DataFrame, input_format: InputFormat = "frame") -> Predictor:
    adapter = SklearnLikeAdapter(model, input_format)
    return Predictor(make_bundle(adapter, float_signature(list(frame.columns)), name="iris"))


def test_predict_matches_the_model_for_every_input_form(iris: tuple[pd.DataFrame, np.ndarray], iris_model: Any) -> None:
    frame, _ = iris
    sample = frame.iloc[::15]
    expected = iris_model.predict(sample)
    predictor = iris_predictor(iris_model, frame)
    for data in (sample, sample.to_dict("records"), sample.to_dict("list"), sample.to_numpy(), sample.values.tolist()):
        np.testing.assert_array_equal(predictor.predict(data), expected)
    # Labels come back in their original type (strings here), not as indices.
    assert set(predictor.predict(sample)) <= {"setosa", "versicolor", "virginica"}


def test_predict_proba_and_classes(iris: tuple[pd.DataFrame, np.ndarray], iris_model: Any) -> None:
    frame, _ = iris
    predictor = iris_predictor(iris_model, frame)
    np.testing.assert_allclose(predictor.predict_proba(frame.head(4)), iris_model.predict_proba(frame.head(4)))
    assert predictor.classes == ("setosa", "versicolor", "virginica")
    assert predictor.output_names == ("predict", "predict_proba")
    assert predictor.has_proba


def test_properties(iris: tuple[pd.DataFrame, np.ndarray], iris_model: Any) -> None:
    frame, _ = iris
    bundle = make_bundle(SklearnLikeAdapter(iris_model), float_signature(list(frame.columns)), name="iris", version=7)
    fast = SklearnLikeAdapter(iris_model, "array")
    predictor = Predictor(bundle, adapter=fast, accelerated="onnxruntime")
    assert predictor.name == "iris"
    assert predictor.version == 7
    assert predictor.signature is bundle.manifest.signature
    assert predictor.manifest is bundle.manifest
    assert predictor.bundle is bundle
    assert predictor.adapter is fast
    assert predictor.accelerated == "onnxruntime"
    assert "accelerated='onnxruntime'" in repr(predictor)
    # The override's input format drives coercion: the fast adapter receives a float matrix.
    predictor.predict(frame.head(2))
    assert isinstance(fast.seen[-1], np.ndarray)
    assert fast.seen[-1].shape == (2, 4)


def test_regressor_has_no_proba() -> None:
    from sklearn.linear_model import LinearRegression

    x = np.arange(20, dtype=float).reshape(10, 2)
    model = LinearRegression().fit(pd.DataFrame(x, columns=["a", "b"]), x.sum(axis=1))
    predictor = Predictor(make_bundle(SklearnLikeAdapter(model), float_signature(["a", "b"])))
    np.testing.assert_allclose(predictor.predict([{"a": 1, "b": 2}]), [3.0])
    with pytest.raises(Unsupported, match="has no predict_proba") as info:
        predictor.predict_proba([{"a": 1, "b": 2}])
    assert info.value.hint
    with pytest.raises(ValidationError, match=r"has 'predict_proba'; available outputs: predict\.") as err:
        predictor.run(predictor.coerce([[1, 2]]), ["predict_proba"])
    assert err.value.hint


def test_run_selects_outputs(iris: tuple[pd.DataFrame, np.ndarray], iris_model: Any) -> None:
    frame, _ = iris
    predictor = iris_predictor(iris_model, frame)
    model_input = predictor.coerce(frame.head(3))
    out = predictor.run(model_input, ["predict", "predict_proba", "predict"])
    assert list(out) == ["predict", "predict_proba"]
    assert out["predict_proba"].shape == (3, 3)
    assert list(predictor.run(model_input)) == ["predict"]
    with pytest.raises(ValidationError, match=r"has 'logits'; available outputs: predict, predict_proba"):
        predictor.run(model_input, ["logits"])
    with pytest.raises(ValidationError, match="has no output"):
        predictor.run(model_input, [])


def test_bad_input_is_a_validation_error(iris: tuple[pd.DataFrame, np.ndarray], iris_model: Any) -> None:
    frame, _ = iris
    predictor = iris_predictor(iris_model, frame)
    records = frame.head(3).to_dict("records")
    records[2]["petal width (cm)"] = "wide"
    with pytest.raises(
        ValidationError, match=r"column 'petal width \(cm\)': expected float, got str \('wide'\) at row 2"
    ):
        predictor.predict(records)
    with pytest.raises(ValidationError, match="Missing column 'sepal length"):
        predictor.predict([{"petal width (cm)": 1.0}])


@pytest.mark.parametrize("input_format", ["frame", "array", "arrays"])
def test_concat_run_split_equals_separate_runs(
    iris: tuple[pd.DataFrame, np.ndarray], iris_model: Any, input_format: InputFormat
) -> None:
    frame, _ = iris
    predictor = iris_predictor(iris_model, frame, input_format)
    requests = [frame.iloc[0:1], frame.iloc[50:53], frame.iloc[100:102]]
    inputs = [predictor.coerce(r) for r in requests]
    assert [predictor.n_rows(i) for i in inputs] == [1, 3, 2]
    batch = predictor.concat(inputs)
    assert predictor.n_rows(batch) == 6
    parts = predictor.split(predictor.run(batch, ("predict", "predict_proba")), [1, 3, 2])
    for request, part in zip(requests, parts, strict=True):
        np.testing.assert_array_equal(part["predict"], iris_model.predict(request))
        np.testing.assert_allclose(part["predict_proba"], iris_model.predict_proba(request))


def test_concat_and_split_edge_cases(iris: tuple[pd.DataFrame, np.ndarray], iris_model: Any) -> None:
    frame, _ = iris
    predictor = iris_predictor(iris_model, frame)
    one = predictor.coerce(frame.head(2))
    assert predictor.concat([one]) is one
    with pytest.raises(ValueError, match="at least one"):
        predictor.concat([])
    out = {"predict": np.arange(3)}
    assert predictor.split(out, [3])[0]["predict"].tolist() == [0, 1, 2]
    assert predictor.n_rows({}) == 0


class _Broken:
    input_format: InputFormat = "array"
    classes = None
    has_proba = False

    def __init__(self, error: Exception | None = None, rows: int | None = None) -> None:
        self.error, self.rows = error, rows

    def predict(self, data: ModelInput) -> np.ndarray:
        if self.error is not None:
            raise self.error
        assert isinstance(data, np.ndarray)
        return np.zeros(self.rows if self.rows is not None else data.shape[0])

    def predict_proba(self, data: ModelInput) -> np.ndarray:
        raise NotImplementedError


def test_model_value_errors_become_validation_errors() -> None:
    predictor = Predictor(make_bundle(_Broken(ValueError("Found unknown categories ['z']")), float_signature(["a"])))
    with pytest.raises(ValidationError, match=r"Model 'tiny' rejected the input: Found unknown categories \['z'\]"):
        predictor.predict([1.0])


def test_model_errors_of_our_own_tree_pass_through() -> None:
    predictor = Predictor(make_bundle(_Broken(Unsupported("nope")), float_signature(["a"])))
    with pytest.raises(Unsupported, match="nope"):
        predictor.predict([1.0])


def test_a_model_returning_the_wrong_number_of_rows_is_caught() -> None:
    predictor = Predictor(make_bundle(_Broken(rows=1), float_signature(["a"])))
    with pytest.raises(ModelportError, match=r"returned 1 predict value\(s\) for 3 input row\(s\)"):
        predictor.predict([1.0, 2.0, 3.0])


def test_tensor_model() -> None:
    class Doubler:
        input_format: InputFormat = "array"
        classes = None
        has_proba = False

        def predict(self, data: ModelInput) -> np.ndarray:
            assert isinstance(data, np.ndarray)
            return data.sum(axis=(1, 2)) * 2

        def predict_proba(self, data: ModelInput) -> np.ndarray:
            raise NotImplementedError

    sig = Signature(kind="tensor", tensors=(TensorSpec(name="input", dtype="float32", shape=(-1, 2, 2)),))
    predictor = Predictor(make_bundle(Doubler(), sig))
    np.testing.assert_allclose(predictor.predict([[1, 2], [3, 4]]), [20.0])
    with pytest.raises(ValidationError, match=r"expected shape \(N, 2, 2\)"):
        predictor.predict(np.zeros((1, 3)))


def test_through_save_and_load_bundle(tmp_path: Path, iris: tuple[pd.DataFrame, np.ndarray], iris_model: Any) -> None:
    from modelport.bundle.io import load_bundle, save_bundle

    frame, _ = iris
    save_bundle(iris_model, tmp_path / "iris", name="iris", sample_input=frame.head(20))
    predictor = Predictor(load_bundle(tmp_path / "iris"))
    sample = frame.iloc[::10]
    np.testing.assert_array_equal(predictor.predict(sample.to_dict("records")), iris_model.predict(sample))
    np.testing.assert_allclose(predictor.predict_proba(sample.to_numpy()), iris_model.predict_proba(sample))
    assert predictor.classes is not None
    assert [str(c) for c in predictor.classes] == ["setosa", "versicolor", "virginica"]
    with pytest.raises(ValidationError, match="Input array has shape"):
        predictor.predict(np.zeros((2, 3)))


def test_mixed_type_pipeline_through_a_bundle(tmp_path: Path) -> None:
    from sklearn.compose import make_column_transformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    from modelport.bundle.io import load_bundle, save_bundle

    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "age": rng.integers(18, 80, 120),
            "income": rng.normal(50, 10, 120),
            "city": rng.choice(["Oslo", "Lima", "Pune"], 120),
            "member": rng.random(120) > 0.5,
        }
    )
    labels = np.where(frame["age"] > 40, "old", "young")
    encode = make_column_transformer(
        (OneHotEncoder(handle_unknown="ignore"), ["city"]),
        (StandardScaler(), ["age", "income"]),
        remainder="passthrough",
    )
    model = make_pipeline(encode, LogisticRegression()).fit(frame, labels)
    save_bundle(model, tmp_path / "mixed", name="mixed", sample_input=frame.head(40))
    predictor = Predictor(load_bundle(tmp_path / "mixed"))
    head = frame.head(6)
    for data in (head.to_dict("records"), head.to_dict("list"), head.values.tolist()):
        np.testing.assert_array_equal(predictor.predict(data), model.predict(head))
    # JSON-ish input: ints as floats, bools as text, an unseen city left to the model's own handling.
    row = {"age": 30.0, "income": 40, "city": "Paris", "member": "true"}
    assert predictor.predict([row]).tolist() == ["young"]
    with pytest.raises(ValidationError, match=r"column 'age': expected int, got float \(30.5\) at row 0"):
        predictor.predict([{**row, "age": 30.5}])


class _Float32Proba:
    """A fast-path stand-in that answers probabilities in float32, as ONNX Runtime does."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.input_format = inner.input_format
        self.classes = inner.classes
        self.has_proba = True

    def predict(self, data: Any) -> np.ndarray:
        return np.asarray(self.inner.predict(data))

    def predict_proba(self, data: Any) -> np.ndarray:
        return np.asarray(self.inner.predict_proba(data), dtype=np.float32)


def test_a_fast_path_answers_in_the_declared_output_dtype(tmp_path: Any) -> None:
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from modelport.bundle.io import load_bundle, save_bundle

    frame, target = load_breast_cancer(return_X_y=True, as_frame=True)
    model = make_pipeline(StandardScaler(), LogisticRegression()).fit(frame, target)
    save_bundle(model, tmp_path / "b", name="bc", sample_input=frame.head(20))
    bundle = load_bundle(tmp_path / "b")
    declared = bundle.manifest.signature.output("predict_proba")
    assert declared is not None
    predictor = Predictor(bundle, adapter=_Float32Proba(bundle.adapter), accelerated="test")
    proba = predictor.run(predictor.coerce(frame.head(3)), ("predict_proba",))["predict_proba"]
    assert proba.dtype == np.dtype(declared.dtype) == np.float64
