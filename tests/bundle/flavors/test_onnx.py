"""The ONNX flavor: ONNX Runtime sessions, per-column inputs, probabilities, and safe external data."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pandas as pd
import pytest
from onnx import TensorProto, helper, numpy_helper
from skl2onnx import convert_sklearn, to_onnx
from skl2onnx.common.data_types import FloatTensorType, StringTensorType
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from modelport.bundle.flavors.onnx import DATA_FILE, MODEL_FILE, OnnxAdapter, OnnxFlavor
from modelport.bundle.flavors.table import BUILTIN_FLAVORS, FlavorTable
from modelport.core.errors import IntegrityError, MissingDependency, Unsupported, ValidationError
from modelport.testing import check_flavor

WEIGHTS = np.arange(12, dtype=np.float32).reshape(4, 3) / 10


def linear_model(*, weights: np.ndarray = WEIGHTS) -> onnx.ModelProto:
    """``y = x @ W``: one float input [N, 4], one output [N, 3]."""
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["y"])],
        "linear",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, weights.shape[0]])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, weights.shape[1]])],
        [numpy_helper.from_array(weights, "W")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="tests")
    model.ir_version = 9
    return model


def two_input_model(width: int = 2) -> onnx.ModelProto:
    """``s = a + b`` over two named inputs [N, width]."""
    graph = helper.make_graph(
        [helper.make_node("Add", ["a", "b"], ["s"])],
        "add",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, [None, width]) for n in ("a", "b")],
        [helper.make_tensor_value_info("s", TensorProto.FLOAT, [None, width])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    return model


def with_external_location(model: onnx.ModelProto, location: str) -> onnx.ModelProto:
    """A copy whose weight claims to live in an external file at ``location``."""
    hostile = onnx.ModelProto()
    hostile.CopyFrom(model)
    tensor = hostile.graph.initializer[0]
    tensor.ClearField("raw_data")
    tensor.ClearField("float_data")
    tensor.data_location = TensorProto.EXTERNAL
    entry = tensor.external_data.add()
    entry.key, entry.value = "location", location
    return hostile


@pytest.fixture
def shop() -> tuple[pd.DataFrame, np.ndarray]:
    """A float column, a string column and a string target."""
    rng = np.random.default_rng(2)
    data = pd.DataFrame({"x": rng.normal(size=120).astype(np.float32), "city": rng.choice(["oslo", "rome"], 120)})
    return data, np.where(data["x"] + (data["city"] == "rome") > 0.5, "buy", "skip")


def test_sklearn_pipeline_with_one_input_per_column_passes_the_battery(
    shop: tuple[pd.DataFrame, np.ndarray], tmp_path: Path
) -> None:
    data, target = shop
    encoders = ColumnTransformer([("num", StandardScaler(), ["x"]), ("cat", OneHotEncoder(), ["city"])])
    pipeline = Pipeline([("prep", encoders), ("clf", LogisticRegression())]).fit(data, target)
    model = convert_sklearn(
        pipeline,
        initial_types=[("x", FloatTensorType([None, 1])), ("city", StringTensorType([None, 1]))],
        options={id(pipeline): {"zipmap": False}},
    )
    loaded = check_flavor(model, data.head(30), tmp_path)

    assert loaded.adapter.input_format == "arrays"
    assert loaded.adapter.classes == ("buy", "skip")
    assert loaded.manifest.flavor_options["classes"] == ["buy", "skip"]
    np.testing.assert_array_equal(loaded.adapter.predict(data), pipeline.predict(data))
    np.testing.assert_allclose(loaded.adapter.predict_proba(data), pipeline.predict_proba(data), atol=1e-5)
    columns = {"x": data["x"].to_numpy(), "city": data["city"].to_numpy(dtype=object)}
    np.testing.assert_array_equal(loaded.adapter.predict(columns), pipeline.predict(data))


def test_zipmap_probabilities_and_squeezed_regression(iris: tuple[np.ndarray, np.ndarray], tmp_path: Path) -> None:
    x, y = iris
    x32 = x.astype(np.float32)
    classifier = LogisticRegression(max_iter=500).fit(x, y)
    loaded = check_flavor(to_onnx(classifier, x32[:1]), x32[::10], tmp_path / "classifier")
    assert loaded.adapter.input_format == "array"
    assert loaded.adapter.classes == (0, 1, 2)
    np.testing.assert_array_equal(loaded.adapter.predict(x32), classifier.predict(x))
    np.testing.assert_allclose(loaded.adapter.predict_proba(x32), classifier.predict_proba(x), atol=1e-5)

    regressor = LinearRegression().fit(x, y)
    loaded = check_flavor(to_onnx(regressor, x32[:1]), x32[::10], tmp_path / "regressor")
    assert loaded.adapter.has_proba is False
    assert loaded.adapter.predict(x32).shape == (len(x),)
    np.testing.assert_allclose(loaded.adapter.predict(x32), regressor.predict(x), atol=1e-4)
    with pytest.raises(Unsupported, match="probability"):
        loaded.adapter.predict_proba(x32)


def test_tensor_models_with_one_and_with_several_inputs_pass_the_battery(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(12, 4)).astype(np.float32)
    loaded = check_flavor(linear_model(), x, tmp_path / "one")
    assert loaded.adapter.input_format == "array"
    assert loaded.manifest.flavor_options["producer"] == "tests"
    np.testing.assert_allclose(loaded.adapter.predict(x), x @ WEIGHTS, rtol=1e-6)

    pair = {"a": rng.normal(size=(6, 2)).astype(np.float32), "b": rng.normal(size=(6, 2)).astype(np.float32)}
    loaded = check_flavor(two_input_model(), pair, tmp_path / "two")
    assert loaded.adapter.input_format == "arrays"
    np.testing.assert_array_equal(loaded.adapter.predict(pair), pair["a"] + pair["b"])
    with pytest.raises(ValidationError, match="'b'"):
        loaded.adapter.predict({"a": pair["a"]})


def test_large_weights_go_to_external_data_inside_the_bundle(tmp_path: Path) -> None:
    flavor = OnnxFlavor(external_data_threshold_bytes=0)
    weights = np.random.default_rng(4).normal(size=(4, 600)).astype(np.float32)
    x = np.ones((3, 4), dtype=np.float32)
    table = FlavorTable({**BUILTIN_FLAVORS, "onnx": flavor})
    loaded = check_flavor(linear_model(weights=weights), x, tmp_path / "checked", flavors=table)
    assert loaded.manifest.flavor_options["external_data"] is True
    assert {a.path for a in loaded.manifest.artifacts} >= {f"artifacts/{MODEL_FILE}", f"artifacts/{DATA_FILE}"}
    np.testing.assert_allclose(loaded.adapter.predict(x), x @ weights, rtol=1e-5)

    (tmp_path / "direct").mkdir()
    saved = flavor.save(linear_model(weights=weights), tmp_path / "direct")
    assert saved.files == (MODEL_FILE, DATA_FILE)
    assert (tmp_path / "direct" / DATA_FILE).stat().st_size >= weights.nbytes


def test_a_model_file_with_external_data_beside_it_can_be_saved(tmp_path: Path) -> None:
    source = tmp_path / "source"
    source.mkdir()
    onnx.save_model(linear_model(), str(source / "net.onnx"), save_as_external_data=True, location="net.bin")
    flavor = OnnxFlavor()
    assert flavor.detect(source / "net.onnx")
    (tmp_path / "artifacts").mkdir()
    saved = flavor.save(source / "net.onnx", tmp_path / "artifacts")
    assert saved.files == (MODEL_FILE,)
    x = np.ones((2, 4), dtype=np.float32)
    np.testing.assert_allclose(flavor.load(tmp_path / "artifacts", saved.options).predict(x), x @ WEIGHTS)


@pytest.mark.parametrize("location", ["../secret.bin", "/etc/passwd", "data/../../secret.bin", "..\\secret.bin", ""])
def test_hostile_external_data_locations_are_refused_everywhere(tmp_path: Path, location: str) -> None:
    (tmp_path / "secret.bin").write_bytes(np.ones(12, dtype=np.float32).tobytes())
    hostile = with_external_location(linear_model(), location)
    flavor = OnnxFlavor()

    artifacts = tmp_path / "bundle" / "artifacts"
    artifacts.mkdir(parents=True)
    (artifacts / MODEL_FILE).write_bytes(hostile.SerializeToString())
    with pytest.raises(IntegrityError, match="external data"):
        flavor.load(artifacts, {})
    with pytest.raises(IntegrityError, match="external data"):
        OnnxAdapter.from_bytes(hostile.SerializeToString())
    with pytest.raises(ValidationError, match="external data"):
        flavor.save(hostile, tmp_path / "out")
    (tmp_path / "bundle" / "hostile.onnx").write_bytes(hostile.SerializeToString())
    with pytest.raises(ValidationError, match="external data"):
        flavor.save(tmp_path / "bundle" / "hostile.onnx", tmp_path / "out")


def test_external_data_through_a_symlink_out_of_the_bundle_is_refused(tmp_path: Path) -> None:
    (tmp_path / "secret.bin").write_bytes(np.ones(12, dtype=np.float32).tobytes())
    artifacts = tmp_path / "artifacts"
    artifacts.mkdir()
    (artifacts / "weights.bin").symlink_to(tmp_path / "secret.bin")
    (artifacts / MODEL_FILE).write_bytes(with_external_location(linear_model(), "weights.bin").SerializeToString())
    with pytest.raises(IntegrityError, match="outside"):
        OnnxFlavor().load(artifacts, {})


@pytest.mark.parametrize("garbage", [b"", b"garbage\x00\x01 not onnx", b"\x08\x07\x12\x04junk", bytes(range(256))])
def test_garbage_bytes_are_refused_with_an_integrity_error(tmp_path: Path, garbage: bytes) -> None:
    with pytest.raises(IntegrityError, match="Not a valid ONNX model"):
        OnnxAdapter.from_bytes(garbage)
    (tmp_path / MODEL_FILE).write_bytes(garbage)
    with pytest.raises(IntegrityError, match=MODEL_FILE):
        OnnxFlavor().load(tmp_path, {})


def test_invalid_models_are_refused_at_save(tmp_path: Path) -> None:
    broken = linear_model()
    broken.graph.node[0].input[1] = "undefined"
    with pytest.raises(ValidationError, match="not valid"):
        OnnxFlavor().save(broken, tmp_path)
    with pytest.raises(ValidationError, match="not a valid ONNX model"):
        OnnxFlavor().save(b"\xff\xff\xff", tmp_path)
    with pytest.raises(ValidationError, match="does not exist"):
        OnnxFlavor().save(tmp_path / "missing.onnx", tmp_path)
    with pytest.raises(Unsupported, match="cannot save a dict"):
        OnnxFlavor().save({"not": "a model"}, tmp_path)
    unloaded = with_external_location(linear_model(), "weights.bin")
    with pytest.raises(Unsupported, match="external files"):
        OnnxFlavor().save(unloaded, tmp_path)


def test_from_bytes_fast_path(iris: tuple[np.ndarray, np.ndarray]) -> None:
    x, y = iris
    x32 = x.astype(np.float32)
    classifier = LogisticRegression(max_iter=500).fit(x, np.array(["a", "b", "c"])[y])
    model_bytes = to_onnx(classifier, x32[:1], options={id(classifier): {"zipmap": False}}).SerializeToString()

    adapter = OnnxAdapter.from_bytes(model_bytes)
    assert adapter.classes == ("a", "b", "c")
    np.testing.assert_array_equal(adapter.predict(x32), classifier.predict(x))
    named = OnnxAdapter.from_bytes(
        model_bytes, classes=("x", "y", "z"), input_format="frame", column_names=list("pqrs")
    )
    assert named.classes == ("x", "y", "z")
    assert named.input_format == "frame"
    frame = pd.DataFrame(x32, columns=list("pqrs"))[["s", "r", "q", "p"]]
    np.testing.assert_allclose(named.predict_proba(frame), classifier.predict_proba(x), atol=1e-5)

    split = OnnxAdapter.from_bytes(two_input_model(width=1).SerializeToString(), column_names=["b", "extra", "a"])
    block = np.arange(12, dtype=np.float32).reshape(4, 3)
    np.testing.assert_array_equal(split.predict(block), block[:, [0]] + block[:, [2]])
    with pytest.raises(ValidationError, match="3 columns"):
        split.predict(block[:, :2])


def test_session_threads_come_from_the_options(tmp_path: Path) -> None:
    flavor = OnnxFlavor()
    saved = flavor.save(linear_model(), tmp_path)
    assert saved.options["intra_op_threads"] == 1
    for threads in (1, 2):
        adapter = flavor.load(tmp_path, {**saved.options, "intra_op_threads": threads})
        assert adapter._session.get_session_options().intra_op_num_threads == threads
    for bad in (-1, "4", True):
        with pytest.raises(IntegrityError, match="intra_op_threads"):
            flavor.load(tmp_path, {**saved.options, "intra_op_threads": bad})
    with pytest.raises(IntegrityError, match="'csv'"):
        flavor.load(tmp_path, {**saved.options, "input_format": "csv"})


def test_wrong_input_is_a_validation_error(tmp_path: Path) -> None:
    flavor = OnnxFlavor()
    adapter = flavor.load(tmp_path, flavor.save(linear_model(), tmp_path).options)
    with pytest.raises(ValidationError, match="ONNX Runtime rejected the input"):
        adapter.predict(np.ones((2, 5), dtype=np.float32))
    with pytest.raises(ValidationError, match="cannot be cast"):
        adapter.predict(np.array([["a", "b", "c", "d"]]))


def test_detect_and_saved_metadata(tmp_path: Path) -> None:
    flavor = OnnxFlavor()
    model = linear_model()
    assert flavor.detect(model)
    assert not flavor.detect(model.SerializeToString())
    assert not flavor.detect(tmp_path / "absent.onnx")
    assert not flavor.detect(object())
    saved = flavor.save(model, tmp_path)
    assert saved.pickle_files == ()
    assert saved.options["opsets"] == {"ai.onnx": 17}
    assert set(saved.framework) == {"onnx", "onnxruntime"}
    assert saved.requirements[0] == f"onnx=={onnx.__version__}"
    code = (
        "import sys\n"
        "from modelport.bundle.flavors.onnx import OnnxFlavor\n"
        "assert not OnnxFlavor().detect(b'bytes')\n"
        "assert 'onnx' not in sys.modules and 'onnxruntime' not in sys.modules, 'onnx was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_missing_onnx_or_onnxruntime_names_the_extra(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    model = linear_model()
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(MissingDependency) as caught:
        OnnxFlavor().save(model, tmp_path)
    assert "modelport[onnx]" in str(caught.value.hint)
    monkeypatch.setitem(sys.modules, "onnx", None)
    with pytest.raises(MissingDependency) as caught:
        OnnxFlavor().load(tmp_path, {})
    assert "modelport[onnx]" in str(caught.value.hint)
