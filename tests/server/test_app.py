"""Protocol conformance in-process: every V2 endpoint, V1 :predict, MLflow /invocations, docs, metrics.

Each prediction is checked against ``Predictor.predict`` on the same bundle.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from modelport.bundle.io import load_bundle
from modelport.core.errors import ConfigError
from modelport.registry.registry import Registry
from modelport.runtime.predictor import Predictor
from modelport.server.app import create_app
from modelport.server.config import ServerConfig
from modelport.server.routes import ROUTES

from .support import FEATURES, rows, save_iris, serving, v2_body

pytestmark = pytest.mark.anyio


def _expected(bundle: Path, records: list[dict[str, float]]) -> list[Any]:
    return Predictor(load_bundle(bundle)).predict(records).tolist()


@pytest.fixture
def app(iris_bundles: dict[int, Path]) -> Any:
    return create_app(ServerConfig(models=(str(iris_bundles[1]),), poll_interval_s=0), registry=None)


async def test_health_and_server_metadata(app: Any) -> None:
    async with serving(app) as client:
        live = await client.get("/v2/health/live")
        assert live.status_code == 200
        assert live.json() == {"live": True}
        ready = await client.get("/v2/health/ready")
        assert ready.status_code == 200
        assert (await client.get("/ping")).status_code == 200
        meta = (await client.get("/v2")).json()
        assert meta["name"] == "modelport"
        assert "model_repository" in meta["extensions"]
        assert isinstance(meta["version"], str)


async def test_model_metadata_and_readiness(app: Any) -> None:
    async with serving(app) as client:
        meta = (await client.get("/v2/models/iris")).json()
        assert meta["name"] == "iris"
        assert meta["versions"] == ["1"]
        assert meta["platform"] == "modelport-sklearn"
        assert [i["name"] for i in meta["inputs"]] == list(FEATURES)
        assert {o["name"] for o in meta["outputs"]} == {"predict", "predict_proba"}
        assert (await client.get("/v2/models/iris/versions/1")).json()["versions"] == ["1"]
        ready = await client.get("/v2/models/iris/ready")
        assert ready.json() == {"name": "iris", "ready": True}
        assert (await client.get("/v2/models/iris/versions/1/ready")).status_code == 200
        missing = await client.get("/v2/models/iris/versions/7/ready")
        assert missing.status_code == 404


async def test_v2_infer_matches_the_predictor(app: Any, iris_bundles: dict[int, Path]) -> None:
    records = rows(5, start=48)
    async with serving(app) as client:
        resp = await client.post("/v2/models/iris/infer", json=v2_body(records, ("predict",), id="req-7"))
        assert resp.status_code == 200
        doc = resp.json()
        assert doc["id"] == "req-7"
        assert doc["model_name"] == "iris"
        assert doc["model_version"] == "1"
        (out,) = doc["outputs"]
        assert out["name"] == "predict"
        assert out["shape"] == [5]
        assert out["data"] == _expected(iris_bundles[1], records)
        assert "x-model-name" not in resp.headers  # the body names them; headers only on request
        assert len(resp.headers["x-request-id"]) >= 16
        versioned = await client.post("/v2/models/iris/versions/1/infer", json=v2_body(records))
        names = [o["name"] for o in versioned.json()["outputs"]]
        assert names == ["predict", "predict_proba"]


async def test_v2_matrix_input_and_binary_extension(app: Any, iris_bundles: dict[int, Path]) -> None:
    records = rows(3, start=60)
    matrix = np.array([[r[f] for f in FEATURES] for r in records], dtype=np.float64)
    raw = matrix.astype("<f8").tobytes()
    header = orjson.dumps(
        {
            "inputs": [
                {"name": "x", "shape": [3, 4], "datatype": "FP64", "parameters": {"binary_data_size": len(raw)}}
            ],
            "outputs": [{"name": "predict", "parameters": {"binary_data": True}}],
        }
    )
    async with serving(app) as client:
        resp = await client.post(
            "/v2/models/iris/infer",
            content=header + raw,
            headers={"Content-Type": "application/octet-stream", "Inference-Header-Content-Length": str(len(header))},
        )
        assert resp.status_code == 200
        json_length = int(resp.headers["inference-header-content-length"])
        head = orjson.loads(resp.content[:json_length])
        (out,) = head["outputs"]
        labels = np.frombuffer(resp.content[json_length:], dtype="<i8")
        assert out["parameters"]["binary_data_size"] == labels.nbytes
        assert labels.tolist() == _expected(iris_bundles[1], records)
        plain = await client.post(
            "/v2/models/iris/infer",
            json={"inputs": [{"name": "m", "shape": [3, 4], "datatype": "FP64", "data": matrix.tolist()}]},
        )
        assert plain.json()["outputs"][0]["data"] == _expected(iris_bundles[1], records)


async def test_v1_predict_records_rows_columns(app: Any, iris_bundles: dict[int, Path]) -> None:
    records = rows(4, start=95)
    expected = _expected(iris_bundles[1], records)
    async with serving(app) as client:
        by_records = (await client.post("/v1/models/iris:predict", json={"instances": records})).json()
        assert by_records["predictions"] == expected
        assert by_records["model_version"] == "1"
        by_rows = await client.post(
            "/v1/models/iris/versions/1:predict",
            json={"instances": [[r[f] for f in FEATURES] for r in records], "probabilities": True},
        )
        doc = by_rows.json()
        assert doc["predictions"] == expected
        assert np.asarray(doc["probabilities"]).shape == (4, 3)
        assert doc["classes"] == [0, 1, 2]
        columns = {f: [r[f] for r in records] for f in FEATURES}
        assert (await client.post("/v1/models/iris:predict", json={"inputs": columns})).json()[
            "predictions"
        ] == expected


async def test_mlflow_invocations_every_format(app: Any, iris_bundles: dict[int, Path]) -> None:
    records = rows(3, start=120)
    expected = {"predictions": _expected(iris_bundles[1], records)}
    split = {"columns": list(FEATURES), "data": [[r[f] for f in FEATURES] for r in records]}
    bodies = [
        {"dataframe_split": split},
        {"dataframe_records": records},
        {"instances": records},
        {"inputs": {f: [r[f] for r in records] for f in FEATURES}},
    ]
    async with serving(app) as client:
        for body in bodies:
            resp = await client.post("/invocations", json=body)
            assert resp.status_code == 200, resp.text
            assert resp.json() == expected


async def test_invocations_needs_one_model(iris_bundles: dict[int, Path], tmp_path: Path) -> None:
    other = save_iris(tmp_path / "other", c=0.5, name="iris-other")
    config = ServerConfig(models=(str(iris_bundles[1]), str(other)), poll_interval_s=0)
    async with serving(create_app(config, registry=None)) as client:
        resp = await client.post("/invocations", json={"instances": rows(1)})
        assert resp.status_code == 400
        assert "default_model" in resp.json()["hint"]


async def test_several_versions_and_the_default_route(registry: Registry) -> None:
    config = ServerConfig(models=("iris@production", "iris:2"), poll_interval_s=0)
    async with serving(create_app(config, registry=registry)) as client:
        assert (await client.get("/v2/models/iris")).json()["versions"] == ["1", "2"]
        default = await client.post("/v2/models/iris/infer", json=v2_body(rows(1)))
        assert default.json()["model_version"] == "1"
        legacy = await client.post("/v2/models/iris/versions/2/infer", json=v2_body(rows(1)))
        assert legacy.json()["model_version"] == "2"
        by_alias = await client.post("/v2/models/iris/versions/production/infer", json=v2_body(rows(1)))
        assert by_alias.json()["model_version"] == "1"
        missing = await client.post("/v2/models/iris/versions/9/infer", json=v2_body(rows(1)))
        assert missing.status_code == 404
        assert "Served versions of 'iris': 1, 2" in missing.json()["hint"]


async def test_serves_every_production_model_when_given_no_reference(registry: Registry) -> None:
    async with serving(create_app(ServerConfig(poll_interval_s=0), registry=registry)) as client:
        resp = await client.post("/v1/models/iris:predict", json={"instances": rows(1)})
        assert resp.json()["model_version"] == "1"


async def test_docs_describe_every_route(app: Any) -> None:
    async with serving(app) as client:
        doc = (await client.get("/openapi.json")).json()
        for spec in ROUTES:
            operation = doc["paths"][spec.path][spec.method.lower()]
            assert operation["x-auth-policy"] == spec.policy
            assert operation["summary"]
            assert "200" in operation["responses"]
        page = await client.get("/docs")
        assert page.status_code == 200
        assert "openapi.json" in page.text
        assert "/v2/repository/index" in page.text


async def test_metrics_and_access_log(app: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="modelport.server.access")
    async with serving(app) as client:
        resp = await client.post("/v2/models/iris/infer", json=v2_body(rows(1)), headers={"X-Request-ID": "abc-123"})
        assert resp.headers["x-request-id"] == "abc-123"
        text = (await client.get("/metrics")).text
    assert 'modelport_requests_total{model="iris",route="v2_infer",status="200"} 1.0' in text
    assert "modelport_batch_size_bucket" in text
    assert 'modelport_model_ready{model="iris",version="1"} 1.0' in text
    lines = [orjson.loads(r.getMessage()) for r in caplog.records if r.name == "modelport.server.access"]
    line = next(entry for entry in lines if entry["request_id"] == "abc-123")
    assert line["model"] == "iris"
    assert line["version"] == 1
    assert line["status"] == 200
    assert line["latency_ms"] > 0


async def test_unknown_route_and_method_are_json_errors(app: Any) -> None:
    async with serving(app) as client:
        missing = await client.get("/v3/nothing")
        assert missing.status_code == 404
        assert missing.json()["error"] == "No route matches GET /v3/nothing."
        wrong = await client.get("/v2/models/iris/infer")
        assert wrong.status_code == 405
        assert set(wrong.json()) == {"error", "hint", "type", "request_id"}


async def test_fast_path_is_used_and_logged(iris_bundles: dict[int, Path], caplog: pytest.LogCaptureFixture) -> None:
    calls: list[str] = []

    class Doubling:
        """Wraps the native adapter and records calls: stands in for the ONNX Runtime adapter."""

        def __init__(self, inner: Any) -> None:
            self.inner, self.input_format, self.classes, self.has_proba = inner, inner.input_format, inner.classes, True

        def predict(self, data: Any) -> np.ndarray:
            calls.append("predict")
            return np.asarray(self.inner.predict(data))

        def predict_proba(self, data: Any) -> np.ndarray:
            return np.asarray(self.inner.predict_proba(data))

    caplog.set_level(logging.INFO, logger="modelport.server")
    config = ServerConfig(models=(str(iris_bundles[1]),), poll_interval_s=0)
    app = create_app(config, registry=None, accelerate=lambda bundle: (Doubling(bundle.adapter), "onnxruntime"))
    async with serving(app) as client:
        calls.clear()
        resp = await client.post("/v2/models/iris/infer", json=v2_body(rows(1), ("predict",)))
        assert resp.status_code == 200
        assert (await client.get("/v2/models/iris")).json()["serving"]["runtime"] == "onnxruntime"
    assert calls == ["predict"]
    assert "serving iris:1 via onnxruntime" in caplog.text


async def test_a_failing_fast_path_falls_back_to_native(
    iris_bundles: dict[int, Path], caplog: pytest.LogCaptureFixture
) -> None:
    def broken(bundle: Any) -> None:
        raise RuntimeError("converter exploded")

    caplog.set_level(logging.INFO, logger="modelport.server")
    config = ServerConfig(models=(str(iris_bundles[1]),), poll_interval_s=0)
    async with serving(create_app(config, registry=None, accelerate=broken)) as client:
        assert (await client.post("/v2/models/iris/infer", json=v2_body(rows(1)))).status_code == 200
    assert "serving iris:1 natively (native: fast path failed (RuntimeError: converter exploded))" in caplog.text


def test_create_app_refuses_registry_references_without_a_registry() -> None:
    with pytest.raises(ConfigError, match="without a registry"):
        create_app(ServerConfig(models=("iris@production",)), registry=None)
    with pytest.raises(ConfigError, match="Nothing to serve"):
        create_app(ServerConfig(), registry=None)


async def test_version_headers_on_request_and_always_on_invocations(iris_bundles: dict[int, Path]) -> None:
    plain = create_app(ServerConfig(models=(str(iris_bundles[1]),), poll_interval_s=0), registry=None)
    named = create_app(
        ServerConfig(models=(str(iris_bundles[1]),), poll_interval_s=0, version_headers=True), registry=None
    )
    records = rows(2)
    async with serving(plain) as client:
        v1 = await client.post("/v1/models/iris:predict", json={"instances": records})
        mlflow = await client.post("/invocations", json={"dataframe_records": records})
    assert "x-model-version" not in v1.headers
    assert (v1.json()["model_name"], v1.json()["model_version"]) == ("iris", "1")
    assert (mlflow.headers["x-model-name"], mlflow.headers["x-model-version"]) == ("iris", "1")
    async with serving(named) as client:
        for resp in (
            await client.post("/v2/models/iris/infer", json=v2_body(records)),
            await client.post("/v1/models/iris:predict", json={"instances": records}),
            await client.post("/invocations", json={"dataframe_records": records}),
        ):
            assert resp.status_code == 200, resp.text
            assert resp.headers.get_list("x-model-name") == ["iris"]  # once, even on /invocations
            assert resp.headers["x-model-version"] == "1"
