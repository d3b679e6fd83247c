"""The KServe Python SDK's REST client (``kserve.InferenceRESTClient``) works unchanged against the server.

Protocol V2: liveness, readiness, inference with one 2-D tensor or one tensor per column (JSON and
binary tensor data, FP64 and FP32), requested outputs, the request id, and errors carrying the
server's message. The SDK's REST client has no metadata calls, so the metadata documents are read
with httpx and validated against the SDK's own V2 data models. Protocol V1: liveness (``GET /``),
model status (``GET /v1/models/{name}``: ready, not ready, unknown) and ``:predict``.

kserve is installed apart from the extras, with --no-deps (it pins pandas<3): see
requirements/kserve-client.txt.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest

from modelport.api.background import background_server
from modelport.runtime.predictor import Predictor
from modelport.server.app import create_app
from modelport.server.config import ServerConfig

from .support import FEATURES, iris_frame, save_iris

try:
    import kserve
    from kserve.protocol.infer_type import RequestedOutput
    from kserve.protocol.rest.v2_datamodels import ModelMetadataResponse, ModelReadyResponse, ServerMetadataResponse
except ImportError as exc:
    _missing = f"the kserve SDK cannot be imported ({exc})"
    if os.environ.get("CI", "").lower() == "true":  # make install / make test install it: CI=true requires it
        pytest.fail(f"{_missing}, and CI=true requires it: run make install.", pytrace=False)
    pytest.skip(f"{_missing}; make install installs it (requirements/kserve-client.txt).", allow_module_level=True)

pytestmark = pytest.mark.anyio


def _sample(dtype: str) -> pd.DataFrame:
    """Six iris rows (two per class), as the server will see them once sent as ``dtype``."""
    x, _ = iris_frame()
    return x.iloc[::25].astype(np.float32 if dtype == "FP32" else np.float64).astype(np.float64)


def _client(protocol: str) -> kserve.InferenceRESTClient:
    return kserve.InferenceRESTClient(kserve.RESTConfig(protocol=protocol, retries=0, timeout=10))


async def test_v2_health_readiness_and_metadata(iris_url: str) -> None:
    client = _client("v2")
    try:
        assert await client.is_server_live(iris_url) is True
        assert await client.is_server_ready(iris_url) is True
        assert await client.is_model_ready(iris_url, "iris") is True
        assert await client.is_model_ready(iris_url, "nope") is False
    finally:
        await client.close()

    async with httpx.AsyncClient(base_url=iris_url) as http:
        server = ServerMetadataResponse.model_validate((await http.get("/v2")).raise_for_status().json())
        model = ModelMetadataResponse.model_validate((await http.get("/v2/models/iris")).raise_for_status().json())
        ready = ModelReadyResponse.model_validate((await http.get("/v2/models/iris/ready")).raise_for_status().json())
    assert server.name == "modelport"
    assert "binary_tensor_data" in server.extensions
    assert model.name == "iris"
    assert [(t.name, t.datatype, t.shape) for t in model.inputs] == [(name, "FP64", [-1]) for name in FEATURES]
    assert {t.name for t in model.outputs} >= {"predict", "predict_proba"}
    assert (ready.name, ready.ready) == ("iris", True)


def _tensor(name: str, values: np.ndarray, datatype: str, binary: bool) -> kserve.InferInput:
    tensor = kserve.InferInput(name, list(values.shape), datatype)
    tensor.set_data_from_numpy(values.astype(np.float32 if datatype == "FP32" else np.float64), binary_data=binary)
    return tensor


def _inputs(sample: pd.DataFrame, layout: str, datatype: str, binary: bool) -> list[kserve.InferInput]:
    if layout == "2-D":
        return [_tensor("input-0", sample.to_numpy(), datatype, binary)]
    return [_tensor(name, sample[name].to_numpy(), datatype, binary) for name in FEATURES]


@pytest.mark.parametrize("layout", ["2-D", "columns"])
@pytest.mark.parametrize(("datatype", "binary"), [("FP64", False), ("FP64", True), ("FP32", False), ("FP32", True)])
async def test_v2_infer(iris_url: str, iris_predictor: Predictor, layout: str, datatype: str, binary: bool) -> None:
    sample = _sample(datatype)
    request = kserve.InferRequest(
        "iris",
        _inputs(sample, layout, datatype, binary),
        request_id=f"kserve-{layout}-{datatype}-{binary}",
        request_outputs=[RequestedOutput("predict"), RequestedOutput("predict_proba", {"binary_data": binary})],
    )
    client = _client("v2")
    try:
        response = await client.infer(iris_url, request, model_name="iris")
    finally:
        await client.close()

    assert isinstance(response, kserve.InferResponse)
    assert (response.id, response.model_name) == (request.id, "iris")
    assert [(o.name, o.datatype, o.shape) for o in response.outputs] == [
        ("predict", "INT64", [len(sample)]),
        ("predict_proba", "FP64", [len(sample), 3]),
    ]
    predict, proba = (o.as_numpy() for o in response.outputs)
    assert predict.tolist() == iris_predictor.predict(sample).tolist() == [0, 0, 1, 1, 2, 2]
    np.testing.assert_allclose(proba, iris_predictor.predict_proba(sample), rtol=1e-6, atol=1e-9)
    assert response.outputs[1].parameters["classes"] == [0, 1, 2]


async def test_v2_only_the_requested_output(iris_url: str, iris_predictor: Predictor) -> None:
    sample = _sample("FP64")
    request = kserve.InferRequest(
        "iris", _inputs(sample, "2-D", "FP64", True), request_outputs=[RequestedOutput("predict_proba")]
    )
    client = _client("v2")
    try:
        response = await client.infer(iris_url, request, model_name="iris")
    finally:
        await client.close()
    assert [o.name for o in response.outputs] == ["predict_proba"]
    np.testing.assert_allclose(response.outputs[0].as_numpy(), iris_predictor.predict_proba(sample), rtol=1e-6)


@pytest.mark.parametrize(
    ("model", "inputs", "status", "message"),
    [
        ("nope", [("sepal_length", [5.1])], 404, "Model 'nope' is not served."),
        ("iris", [("bogus", [1.0, 2.0])], 422, "input 'bogus' is not a column of the model"),
    ],
)
async def test_v2_errors_carry_the_server_message(
    iris_url: str, model: str, inputs: list[tuple[str, list[float]]], status: int, message: str
) -> None:
    tensors = [kserve.InferInput(name, [len(data)], "FP64", data=data) for name, data in inputs]
    client = _client("v2")
    try:
        with pytest.raises(httpx.HTTPStatusError) as caught:
            await client.infer(iris_url, kserve.InferRequest(model, tensors), model_name=model)
    finally:
        await client.close()
    assert caught.value.response.status_code == status
    assert str(caught.value).startswith(message)  # the SDK puts the body's "error" first


@pytest.mark.parametrize("probabilities", [False, True])
async def test_v1_predict(iris_url: str, iris_predictor: Predictor, probabilities: bool) -> None:
    sample = _sample("FP64")
    body: dict[str, Any] = {"instances": sample.to_dict("records"), "probabilities": probabilities}
    client = _client("v1")
    try:
        response = await client.infer(iris_url, body, model_name="iris")
        with pytest.raises(httpx.HTTPStatusError, match=r"Model 'nope' is not served\."):
            await client.infer(iris_url, body, model_name="nope")
    finally:
        await client.close()

    assert isinstance(response, dict)
    assert response["predictions"] == iris_predictor.predict(sample).tolist()
    assert (response["model_name"], response["model_version"]) == ("iris", "1")
    if probabilities:
        np.testing.assert_allclose(response["probabilities"], iris_predictor.predict_proba(sample), rtol=1e-6)
        assert response["classes"] == [0, 1, 2]
    else:
        assert "probabilities" not in response


@pytest.fixture(scope="module")
def half_ready_url(tmp_path_factory: pytest.TempPathFactory, iris_bundles: dict[int, Path]) -> Iterator[str]:
    """A real server serving ``iris``, and a bundle ``broken`` whose artifact is truncated: it never gets ready."""
    broken = save_iris(tmp_path_factory.mktemp("kserve") / "broken", c=1.0, name="broken")
    artifact = next(broken.rglob("*.skops"))
    artifact.write_bytes(artifact.read_bytes()[:100])
    models = (str(iris_bundles[1]), str(broken))
    config = ServerConfig(models=models, poll_interval_s=0, access_log=False, load_retries=1)
    with background_server(create_app(config, registry=None)) as url:
        yield url


async def test_v1_liveness_and_model_status(half_ready_url: str) -> None:
    client = _client("v1")
    try:
        assert await client.is_server_live(half_ready_url) is True  # GET /: alive, though not every model is ready
        assert await client.is_model_ready(half_ready_url, "iris") is True
        assert await client.is_model_ready(half_ready_url, "broken") is False  # the SDK reads 503 as not ready
        with pytest.raises(httpx.HTTPStatusError, match=r"Model 'nope' is not served\.") as caught:
            await client.is_model_ready(half_ready_url, "nope")
    finally:
        await client.close()
    assert caught.value.response.status_code == 404
    assert caught.value.response.json()["hint"] == "Served models: iris."

    async with httpx.AsyncClient(base_url=half_ready_url) as http:
        live, ready, broken = [await http.get(path) for path in ("/", "/v1/models/iris", "/v1/models/broken")]
    assert (live.status_code, live.json()) == (200, {"status": "alive"})
    assert (ready.status_code, ready.json()) == (200, {"name": "iris", "ready": True})
    assert broken.status_code == 503
    assert broken.json()["error"].startswith("Model 'broken' is not ready")
    assert broken.json()["error"].count("is not ready") == 1  # the reason, not the whole message, is quoted
    assert "IntegrityError" in broken.json()["error"]
    assert "truncated" in broken.json()["error"]
