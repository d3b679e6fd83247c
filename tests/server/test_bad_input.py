"""The bad-input table: every user mistake is a 4xx whose body names the problem, never a 500 or a traceback."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

import orjson
import pytest

from modelport.server.app import create_app
from modelport.server.config import ServerConfig

from .support import rows, serving, v2_body

pytestmark = pytest.mark.anyio

GOOD = v2_body(rows(1))


def _with_input(**changes: Any) -> dict[str, Any]:
    doc = v2_body(rows(2))
    doc["inputs"][0] = {**doc["inputs"][0], **changes}
    return doc


def _columns(**extra: Any) -> dict[str, Any]:
    record = rows(1)[0]
    return {"instances": [{**record, **extra}]}


def _deep(depth: int) -> bytes:
    return b'{"inputs": ' + b"[" * depth + b"]" * depth + b"}"


CASES: list[tuple[str, str, Any, dict[str, str], int, str]] = [
    ("malformed JSON", "/v2/models/iris/infer", b'{"inputs": [', {}, 400, "Malformed JSON"),
    ("empty body", "/v2/models/iris/infer", b"", {}, 400, "empty"),
    ("not an object", "/v2/models/iris/infer", b"[1, 2]", {}, 400, "JSON object"),
    ("unknown datatype", "/v2/models/iris/infer", _with_input(datatype="FP128"), {}, 422, "unknown datatype 'FP128'"),
    ("data not of the datatype", "/v2/models/iris/infer", _with_input(data=["a", "b"]), {}, 422, "read as FP64"),
    ("shape and data disagree", "/v2/models/iris/infer", _with_input(shape=[3]), {}, 422, "holds 3 values"),
    ("unknown column", "/v1/models/iris:predict", _columns(colour="red"), {}, 422, "Unknown input column 'colour'"),
    ("missing column", "/v1/models/iris:predict", {"instances": [{"sepal_length": 1.0}]}, {}, 422, "Missing column"),
    ("missing value", "/v1/models/iris:predict", _columns(sepal_width=None), {}, 422, "missing value"),
    ("NaN as text", "/v2/models/iris/infer", _with_input(data=["NaN", 1.0]), {}, 422, "sepal_length"),
    ("infinity", "/v1/models/iris:predict", b'{"instances": [[1e999, 1, 1, 1]]}', {}, 400, "infinity"),
    ("deep nesting", "/v2/models/iris/infer", _deep(80), {}, 400, "nesting depth 81 exceeds the limit of 64"),
    ("unknown output", "/v2/models/iris/infer", v2_body(rows(1), ("explain",)), {}, 422, "'explain'"),
    ("wrong row width", "/v1/models/iris:predict", {"instances": [[1.0, 2.0]]}, {}, 422, "takes 4"),
    ("text in a number column", "/invocations", {"dataframe_records": [{**rows(1)[0], "petal_width": "wide"}]}, {},
     422, "petal_width"),
    ("pickle body", "/invocations", b"\x80\x04K\x01.", {"content-type": "application/python-pickle"}, 415, "pickle"),
    ("csv body on V2", "/v2/models/iris/infer", b"a,b\n1,2", {"content-type": "text/csv"}, 415, "text/csv"),
    ("csv without header", "/invocations", b"1,2,3,4\n1,2,3,4", {"content-type": "text/csv"}, 400, "header row"),
    ("unknown model", "/v2/models/nope/infer", GOOD, {}, 404, "Model 'nope' is not served"),
    ("unknown version", "/v2/models/iris/versions/5/infer", GOOD, {}, 404, "Version '5'"),
    ("unknown V1 model", "/v1/models/nope:predict", {"instances": rows(1)}, {}, 404, "not served"),
]  # fmt: skip


@pytest.fixture
def app(iris_bundles: dict[int, Path]) -> Any:
    return create_app(ServerConfig(models=(str(iris_bundles[1]),), poll_interval_s=0), registry=None)


async def test_every_bad_input_is_a_teaching_4xx(app: Any) -> None:
    async with serving(app) as client:
        for label, path, body, headers, status, message in CASES:
            content = body if isinstance(body, bytes) else orjson.dumps(body)
            resp = await client.post(path, content=content, headers={"content-type": "application/json", **headers})
            assert resp.status_code == status, (label, resp.text)
            doc = resp.json()
            assert set(doc) == {"error", "hint", "type", "request_id"}, label
            assert message in doc["error"], (label, doc)
            assert doc["hint"], label
            assert doc["request_id"] == resp.headers["x-request-id"]
            assert "Traceback" not in resp.text
            assert "/work" not in resp.text
            assert "site-packages" not in resp.text
        assert (await client.post("/v2/models/iris/infer", json=GOOD)).status_code == 200


async def test_unknown_model_lists_what_is_served(app: Any) -> None:
    async with serving(app) as client:
        resp = await client.get("/v2/models/churn")
        assert resp.status_code == 404
        assert resp.json()["hint"] == "Served models: iris."


async def test_body_over_the_limit_is_413(app: Any) -> None:
    big = b'{"instances": [' + b"1," * (9 * 1024 * 1024) + b"1]}"
    async with serving(app) as client:
        resp = await client.post("/v1/models/iris:predict", content=big, headers={"content-type": "application/json"})
        assert resp.status_code == 413
        assert "16777216 bytes" in resp.json()["error"]


async def test_gzip_bomb_is_413(iris_bundles: dict[int, Path]) -> None:
    config = ServerConfig(models=(str(iris_bundles[1]),), poll_interval_s=0, max_body_bytes=1024 * 1024)
    bomb = gzip.compress(b" " * (50 * 1024 * 1024))
    assert len(bomb) < 100_000
    async with serving(create_app(config, registry=None)) as client:
        resp = await client.post(
            "/v2/models/iris/infer",
            content=bomb,
            headers={"content-type": "application/json", "content-encoding": "gzip"},
        )
        assert resp.status_code == 413
        assert "after decompression" in resp.json()["error"]
        ok = await client.post(
            "/v2/models/iris/infer",
            content=gzip.compress(orjson.dumps(GOOD)),
            headers={"content-type": "application/json", "content-encoding": "gzip"},
        )
        assert ok.status_code == 200


async def test_errors_are_logged_to_metrics_by_status(app: Any) -> None:
    async with serving(app) as client:
        await client.post("/v2/models/iris/infer", content=b"{")
        text = (await client.get("/metrics")).text
    assert 'modelport_requests_total{model="iris",route="v2_infer",status="400"} 1.0' in text


async def test_unknown_names_never_become_metric_labels(app: Any) -> None:
    async with serving(app) as client:
        for i in range(5):
            await client.get(f"/v2/models/random-{i}/ready")
            await client.post(f"/v2/models/random-{i}/infer", json=GOOD)
        text = (await client.get("/metrics")).text
    assert "random-" not in text
    assert 'modelport_requests_total{model="",route="v2_infer",status="404"} 5.0' in text
