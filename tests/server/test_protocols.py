"""V2, V1 and MLflow request parsing and response encoding, without a model."""

from __future__ import annotations

import struct

import numpy as np
import orjson
import pytest

from modelport.core.errors import BadRequest, ValidationError
from modelport.core.types import ColumnSpec, OutputSpec, Signature, TensorSpec
from modelport.server.limits import Body, json_depth
from modelport.server.protocols import mlflow, v1, v2
from modelport.server.protocols.tensors import InferenceRequest, array_to_binary, dumps

TABULAR = Signature(
    kind="tabular",
    columns=(
        ColumnSpec(name="age", type="int", dtype="int64"),
        ColumnSpec(name="income", type="float", dtype="float64"),
        ColumnSpec(name="plan", type="string", dtype="object"),
    ),
    outputs=(
        OutputSpec(name="predict", kind="label", dtype="int64"),
        OutputSpec(name="predict_proba", kind="probabilities", dtype="float64", shape=(-1, 2), classes=(0, 1)),
    ),
)
TENSOR = Signature(kind="tensor", tensors=(TensorSpec(name="x", dtype="float32", shape=(-1, 4)),))


def _v2(doc: object) -> Body:
    return Body(orjson.dumps(doc))


def test_v2_one_input_per_column() -> None:
    req = v2.parse_infer(
        _v2(
            {
                "id": "r1",
                "inputs": [
                    {"name": "age", "shape": [2], "datatype": "INT64", "data": [30, 40]},
                    {"name": "income", "shape": [2, 1], "datatype": "FP64", "data": [[1.5], [2.5]]},
                    {"name": "plan", "shape": [2], "datatype": "BYTES", "data": ["a", "b"]},
                ],
                "outputs": [{"name": "predict"}],
            }
        ),
        TABULAR,
        64,
    )
    assert req.id == "r1"
    assert req.outputs == ("predict",)
    assert req.data["age"].dtype == np.int64
    assert req.data["income"].tolist() == [1.5, 2.5]
    assert req.data["plan"].tolist() == ["a", "b"]


def test_v2_one_matrix_input_in_signature_order() -> None:
    req = v2.parse_infer(
        _v2({"inputs": [{"name": "input-0", "shape": [1, 3], "datatype": "FP64", "data": [30, 1.5, 2]}]}), TABULAR, 64
    )
    assert req.outputs is None
    assert req.data.shape == (1, 3)


@pytest.mark.parametrize(
    ("tensor", "message"),
    [
        ({"name": "age", "shape": [2], "datatype": "FP99", "data": [1, 2]}, "unknown datatype 'FP99'"),
        (
            {"name": "age", "shape": [3], "datatype": "INT64", "data": [1, 2]},
            r"shape \[3\] holds 3 values but data has 2",
        ),
        ({"name": "age", "shape": [2], "datatype": "INT64", "data": ["x", "y"]}, "cannot be read as INT64"),
        ({"name": "age", "shape": [-1], "datatype": "INT64", "data": [1]}, "non-negative"),
        ({"name": "colour", "shape": [1], "datatype": "INT64", "data": [1]}, "not a column of the model"),
        ({"name": "age", "shape": [1, 2], "datatype": "INT64", "data": [1, 2]}, r"shape \[1, 2\]"),
    ],
)
def test_v2_bad_tensors_name_the_problem(tensor: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        v2.parse_infer(_v2({"inputs": [tensor]}), TABULAR, 64)


def test_v2_unknown_column_among_columns() -> None:
    doc = {
        "inputs": [
            {"name": "age", "shape": [1], "datatype": "INT64", "data": [1]},
            {"name": "colour", "shape": [1], "datatype": "BYTES", "data": ["red"]},
        ]
    }
    with pytest.raises(ValidationError, match="Unknown input column 'colour'"):
        v2.parse_infer(_v2(doc), TABULAR, 64)


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ([1, 2], "JSON object"),
        ({}, "'inputs' must be a non-empty list"),
        ({"inputs": [{"shape": [1], "datatype": "FP32", "data": [1]}]}, "has no 'name'"),
        ({"inputs": [{"name": "age", "shape": [1], "datatype": "INT64"}]}, "neither 'data'"),
        (
            {"inputs": [{"name": "age", "shape": [1], "datatype": "INT64", "data": [1]}], "outputs": "predict"},
            "'outputs'",
        ),
        ({"inputs": [{"name": "age", "shape": [1], "datatype": "INT64", "data": [1]}], "id": 5}, "'id'"),
    ],
)
def test_v2_malformed_requests_are_bad_requests(doc: object, message: str) -> None:
    with pytest.raises(BadRequest, match=message):
        v2.parse_infer(_v2(doc), TABULAR, 64)


def test_v2_tensor_model_and_binary_extension_round_trip() -> None:
    x = np.arange(8, dtype=np.float32).reshape(2, 4)
    raw = array_to_binary(x)
    header = orjson.dumps(
        {
            "inputs": [
                {"name": "x", "shape": [2, 4], "datatype": "FP32", "parameters": {"binary_data_size": len(raw)}}
            ],
            "outputs": [{"name": "predict", "parameters": {"binary_data": True}}],
        }
    )
    req = v2.parse_infer(Body(header + raw, len(header)), TENSOR, 64)
    np.testing.assert_array_equal(req.data, x)  # the model's one tensor is passed as a bare array
    assert req.binary_outputs == frozenset({"predict"})
    labels = np.array(["yes", "no"], dtype=object)
    body, json_length = v2.encode_infer(req, {"predict": labels}, model="m", version=3, classes=None)
    assert json_length is not None
    head = orjson.loads(body[:json_length])
    out = head["outputs"][0]
    assert out["datatype"] == "BYTES"
    assert head["model_version"] == "3"
    size = out["parameters"]["binary_data_size"]
    tail = body[json_length : json_length + size]
    (first_len,) = struct.unpack_from("<I", tail, 0)
    assert tail[4 : 4 + first_len] == b"yes"


def test_v2_binary_size_beyond_body_is_refused() -> None:
    header = orjson.dumps(
        {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "parameters": {"binary_data_size": 64}}]}
    )
    with pytest.raises(BadRequest, match="binary_data_size"):
        v2.parse_infer(Body(header + b"\x00" * 16, len(header)), TENSOR, 64)


def test_v2_response_shapes_and_datatypes() -> None:
    req = InferenceRequest(data=None, id="abc")
    body, json_length = v2.encode_infer(
        req,
        {"predict": np.array([1, 0]), "predict_proba": np.array([[0.2, 0.8], [0.9, 0.1]])},
        model="churn",
        version=2,
        classes=(0, 1),
    )
    assert json_length is None
    doc = orjson.loads(body)
    assert doc["id"] == "abc"
    assert doc["model_name"] == "churn"
    predict, proba = doc["outputs"]
    assert predict == {"name": "predict", "datatype": "INT64", "shape": [2], "data": [1, 0]}
    assert proba["shape"] == [2, 2]
    assert proba["data"] == [0.2, 0.8, 0.9, 0.1]
    assert proba["parameters"]["classes"] == [0, 1]


def test_v2_metadata_lists_columns() -> None:
    doc = v2.model_metadata("churn", [1, 2], TABULAR, "sklearn")
    assert doc["versions"] == ["1", "2"]
    assert [i["name"] for i in doc["inputs"]] == ["age", "income", "plan"]
    assert doc["inputs"][2]["datatype"] == "BYTES"
    assert doc["outputs"][1]["shape"] == [-1, 2]


def test_v1_records_rows_and_columns() -> None:
    req = v1.parse_predict({"instances": [{"age": 1, "income": 2.0, "plan": "a"}]}, TABULAR)
    assert req.data == [{"age": 1, "income": 2.0, "plan": "a"}]
    assert req.outputs == ("predict",)
    req = v1.parse_predict({"instances": [[1, 2.0, "a"]], "probabilities": True}, TABULAR)
    assert req.outputs == ("predict", "predict_proba")
    req = v1.parse_predict({"inputs": {"age": [1], "income": [2.0], "plan": ["a"]}}, TABULAR)
    assert req.data["plan"] == ["a"]


@pytest.mark.parametrize(
    ("doc", "error", "message"),
    [
        ({}, BadRequest, "exactly one of 'instances' and 'inputs'"),
        ({"instances": [], "inputs": {}}, BadRequest, "exactly one"),
        ({"instances": []}, BadRequest, "non-empty"),
        ({"instances": [{"age": 1, "colour": "red"}]}, ValidationError, "Unknown input column 'colour'"),
        ({"inputs": {"colour": [1]}}, ValidationError, "colour"),
        ({"instances": [[1, 2, "a"]], "probabilities": "yes"}, BadRequest, "probabilities"),
    ],
)
def test_v1_bad_requests(doc: object, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        v1.parse_predict(doc, TABULAR)


def test_v1_encoding() -> None:
    doc = orjson.loads(
        dumps(
            v1.encode_predict(
                {"predict": np.array(["a", "b"]), "predict_proba": np.array([[0.5, 0.5], [1.0, 0.0]])},
                model="m",
                version=1,
                classes=("a", "b"),
            )
        )
    )
    assert doc == {
        "predictions": ["a", "b"],
        "probabilities": [[0.5, 0.5], [1.0, 0.0]],
        "classes": ["a", "b"],
        "model_name": "m",
        "model_version": "1",
    }


def test_mlflow_formats() -> None:
    split = mlflow.parse_invocations(
        {"dataframe_split": {"columns": ["plan", "age", "income"], "data": [["a", 1, 2.0], ["b", 3, 4.0]]}}, TABULAR
    )
    assert split.data == {"plan": ["a", "b"], "age": [1, 3], "income": [2.0, 4.0]}
    records = mlflow.parse_invocations({"dataframe_records": [{"age": 1, "income": 2.0, "plan": "a"}]}, TABULAR)
    assert records.data == [{"age": 1, "income": 2.0, "plan": "a"}]
    inst = mlflow.parse_invocations({"instances": [[1, 2.0, "a"]], "params": {"x": 1}}, TABULAR)
    assert inst.data == [[1, 2.0, "a"]]
    cols = mlflow.parse_invocations({"inputs": {"age": [1], "income": [2.0], "plan": ["a"]}}, TABULAR)
    assert cols.data["age"] == [1]
    assert orjson.loads(dumps(mlflow.encode_invocations({"predict": np.array([1, 0])}))) == {"predictions": [1, 0]}


@pytest.mark.parametrize(
    ("doc", "error", "message"),
    [
        ({"data": [[1]]}, BadRequest, "found none of them"),
        ({"instances": [[1, 2.0, "a"]], "inputs": {}}, BadRequest, "found instances, inputs"),
        ({"dataframe_split": {"columns": ["age"], "data": [[1, 2]]}}, ValidationError, "row 0 has 2 values"),
        ({"dataframe_split": {"columns": ["bogus"], "data": [[1]]}}, ValidationError, "Unknown input column 'bogus'"),
        ({"dataframe_records": [1, 2]}, BadRequest, "list of records"),
    ],
)
def test_mlflow_bad_requests(doc: object, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        mlflow.parse_invocations(doc, TABULAR)


SIMPLE = [
    (TENSOR, {"inputs": [{"name": "x", "shape": [2, 4], "datatype": "FP32", "data": [1, 2, 3, 4, 5, 6, 7, 8]}]}),
    (TENSOR, {"id": "a", "inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP64", "data": [[1, 2, 3, 4]]}]}),
    (TENSOR, {"inputs": [{"name": "x", "shape": [2, 4], "datatype": "FP32", "data": [[1, 2, 3, 4, 5, 6, 7, 8]]}]}),
    (
        TABULAR,
        {
            "inputs": [{"name": "rows", "shape": [2, 3], "datatype": "INT64", "data": [1, 2, 3, 4, 5, 6]}],
            "outputs": [{"name": "predict_proba"}, {"name": "predict"}],
        },
    ),
]


@pytest.mark.parametrize(("signature", "doc"), SIMPLE)
def test_v2_one_pass_reader_builds_what_the_general_parser_builds(signature: Signature, doc: dict[str, object]) -> None:
    fast = v2._simple_request(doc, signature, 64)
    general = v2._general_request(doc, _v2(doc), signature)
    assert fast is not None  # the one-pass reader took it
    assert (fast.outputs, fast.id, fast.binary_outputs) == (general.outputs, general.id, general.binary_outputs)
    assert fast.data.dtype == general.data.dtype
    np.testing.assert_array_equal(fast.data, general.data)
    assert v2.parse_infer(_v2(doc), signature, 64).data.shape == general.data.shape


@pytest.mark.parametrize(
    ("signature", "doc"),
    [
        (TENSOR, {"inputs": [{"name": "x", "shape": [2, 4], "datatype": "FP32", "data": [1, 2, 3]}]}),  # too few
        (TENSOR, {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": ["a", 1, 2, 3]}]}),
        (TENSOR, {"inputs": [{"name": "x", "shape": [1, -4], "datatype": "FP32", "data": [1, 2, 3, 4]}]}),
        (TENSOR, {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP9", "data": [1, 2, 3, 4]}]}),
        (TENSOR, {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}], "id": 7}),
    ],
)
def test_v2_wrong_requests_get_the_general_parsers_errors(signature: Signature, doc: dict[str, object]) -> None:
    assert v2._simple_request(doc, signature, 64) is None
    with pytest.raises((BadRequest, ValidationError)):
        v2.parse_infer(_v2(doc), signature, 64)


@pytest.mark.parametrize(
    ("signature", "doc"),
    [
        (TENSOR, {"inputs": [{"name": "y", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}]}),
        (TABULAR, {"inputs": [{"name": "age", "shape": [1, 1], "datatype": "INT64", "data": [30]}]}),  # a column
        (TENSOR, {"parameters": {}, "inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [1] * 4}]}),
    ],
)
def test_v2_unusual_requests_are_left_to_the_general_parser(signature: Signature, doc: dict[str, object]) -> None:
    assert v2._simple_request(doc, signature, 64) is None
    assert isinstance(v2.parse_infer(_v2(doc), signature, 64), InferenceRequest)


@pytest.mark.parametrize(
    "doc",
    [
        # data nested as deep as the limit allows past the request, the inputs list and the tensor
        {"inputs": [{"name": "x", "shape": [1, 1, 1, 1], "datatype": "FP32", "data": [[[[1]]]]}]},
        # depth hidden in a key the one-pass reader does not read
        {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}], "x": [[[[[[1]]]]]]},
    ],
)
def test_v2_depth_limit_holds_on_the_one_pass_path(doc: dict[str, object]) -> None:
    body = _v2(doc)
    depth = json_depth(body.data)
    assert depth > 6
    with pytest.raises(BadRequest, match=f"nesting depth {depth} exceeds the limit of 6"):
        v2.parse_infer(body, TENSOR, 6)
    assert isinstance(v2.parse_infer(body, TENSOR, depth), InferenceRequest)


def test_v2_one_pass_reader_knows_the_depth_of_what_it_reads() -> None:
    doc = {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [[1, 2, 3, 4]]}]}
    assert json_depth(_v2(doc).data) == 5
    assert v2._simple_request(doc, TENSOR, 5) is not None
    assert v2._simple_request(doc, TENSOR, 4) is None  # left to the general path, which refuses it
    with pytest.raises(BadRequest, match="nesting depth 5 exceeds the limit of 4"):
        v2.parse_infer(_v2(doc), TENSOR, 4)


@pytest.mark.parametrize(
    ("results", "request_id", "classes"),
    [
        ({"predict": np.array([1, 0], dtype=np.int64)}, None, None),
        ({"predict": np.array([1, 0], dtype=np.int64)}, 'quote " and \\ id', None),
        (
            {"predict": np.array(["b", "a"], dtype=object), "predict_proba": np.array([[0.1, 0.9], [1.0, 0.0]])},
            "r1",
            (np.str_("a"), "b"),
        ),
        ({"predict_proba": np.array([[0.25, 0.75]], dtype=np.float32)}, None, (0, np.int64(1))),
        ({"predict_proba": np.array([[0.25, 0.75]], dtype=np.float32)}, None, None),
        ({"embedding": np.arange(6, dtype=np.float64).reshape(1, 2, 3), "flag": np.array([True])}, None, None),
        ({"predict": np.array(["x\u00e9", "y"], dtype="<U2")}, None, None),
    ],
)
def test_v2_response_encoder_writes_exactly_the_whole_document(
    results: dict[str, np.ndarray], request_id: str | None, classes: tuple[object, ...] | None
) -> None:
    encoder = v2.ResponseEncoder('model "m"', 7, classes)
    request = InferenceRequest(np.zeros((1, 4)), tuple(results), request_id)
    for _ in range(2):  # the second time from the encoder's cached parts
        body, json_length = encoder.encode(request, results)
        assert json_length is None
        assert body == encoder._encode_document(request, results)[0]
    doc = orjson.loads(body)
    assert (doc["model_name"], doc["model_version"]) == ('model "m"', "7")
    assert [o["name"] for o in doc["outputs"]] == list(results)
    assert doc.get("id") == request_id
