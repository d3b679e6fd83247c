"""The prediction fast path: POST infer/:predict requests skip the router yet keep every guarantee."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from modelport.server.app import create_app
from modelport.server.config import ServerConfig
from modelport.server.fastpath import FastPath
from modelport.server.middleware import RequestIds

from .support import rows, serving, v2_body

KEY = "predict-key-0123456789abcdef"


class _Recorder:
    """An ASGI app that records the scopes it was called with."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.calls: list[dict[str, Any]] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.calls.append(dict(scope))


def _scope(method: str, path: str, root_path: str = "") -> dict[str, Any]:
    return {"type": "http", "method": method, "path": path, "root_path": root_path, "headers": []}


async def _nothing() -> dict[str, Any]:
    return {"type": "http.disconnect"}


async def _drop(message: Any) -> None:
    return None


@pytest.mark.anyio
async def test_matches_prediction_posts_and_leaves_everything_else_to_the_router() -> None:
    infer, versioned, v1, other = (_Recorder(n) for n in ("infer", "versioned", "v1", "other"))
    routes = [
        Route("/v2/models/{name}/infer", infer, methods=["POST"]),
        Route("/v2/models/{name}/versions/{version}/infer", versioned, methods=["POST"]),
        Route("/v1/models/{name}:predict", v1, methods=["POST"]),
        Route("/v2/models/{name}", other, methods=["GET"]),
        Route("/v2/models/{n:int}/infer", other, methods=["POST"]),  # not a string parameter: left to the router
    ]
    fast = FastPath(routes)
    rest: list[tuple[str, str]] = []
    for method, path, root in [
        ("POST", "/v2/models/iris/infer", ""),
        ("POST", "/v2/models/iris/versions/production/infer", ""),
        ("POST", "/v1/models/iris:predict", ""),
        ("GET", "/v2/models/iris/infer", ""),  # wrong method: the router answers 405
        ("POST", "/v2/models/iris", ""),
        ("POST", "/v2/models/a/b/infer", ""),  # no route matches
        ("POST", "/v2/models/iris/infer/", ""),
        ("POST", "/v2/models/iris/infer", "/api"),  # mounted: router
    ]:
        scope = _scope(method, path, root)
        endpoint = fast.match(scope)
        if endpoint is None:
            rest.append((method, path))
        else:
            await endpoint(scope, _nothing, _drop)
    assert [c["path_params"] for c in infer.calls] == [{"name": "iris"}]
    assert [c["path_params"] for c in versioned.calls] == [{"name": "iris", "version": "production"}]
    assert [c["path_params"] for c in v1.calls] == [{"name": "iris"}]
    assert other.calls == []
    assert rest == [
        ("GET", "/v2/models/iris/infer"),
        ("POST", "/v2/models/iris"),
        ("POST", "/v2/models/a/b/infer"),
        ("POST", "/v2/models/iris/infer/"),
        ("POST", "/v2/models/iris/infer"),
    ]


@pytest.mark.anyio
async def test_fast_predictions_keep_auth_errors_request_ids_and_metrics(iris_bundles: dict[int, Path]) -> None:
    config = ServerConfig(models=(str(iris_bundles[1]),), poll_interval_s=0, api_keys=[f"predict:{KEY}"])
    app = create_app(config, registry=None)
    body = v2_body(rows(2), ("predict",))
    async with serving(app) as client:
        refused = await client.post("/v2/models/iris/infer", json=body)
        assert refused.status_code == 401
        assert refused.headers["x-request-id"] == refused.json()["request_id"]
        headers = {"Authorization": f"Bearer {KEY}", "X-Request-ID": "caller-id-1"}
        ok = await client.post("/v2/models/iris/versions/1/infer", json=body, headers=headers)
        assert ok.status_code == 200
        assert ok.headers["x-request-id"] == "caller-id-1"
        assert (ok.json()["model_name"], ok.json()["model_version"]) == ("iris", "1")
        v1 = await client.post("/v1/models/iris:predict", json={"instances": rows(1)}, headers=headers)
        assert v1.status_code == 200
        assert len(v1.json()["predictions"]) == 1
        unknown = await client.post("/v2/models/nope/infer", json=body, headers=headers)
        assert unknown.status_code == 404
        assert "iris" in unknown.json()["error"] + unknown.json()["hint"]
        bad = await client.post("/v2/models/iris/infer", content=b"{not json", headers=headers)
        assert bad.status_code == 400
        assert "Malformed JSON" in bad.json()["error"]
        wrong_method = await client.get("/v2/models/iris/infer", headers=headers)
        assert wrong_method.status_code == 405
        assert "Method not allowed" in wrong_method.json()["error"]
        state = app.state.modelport
        labels = {"route": "v2_infer", "model": "iris", "status": "200"}
        assert state.metrics.value("modelport_requests_total", labels) == 1.0


def test_request_ids_are_unique_and_differ_between_apps() -> None:
    first, second = RequestIds(), RequestIds()
    ids = [first.next() for _ in range(1000)]
    assert len(set(ids)) == 1000
    assert all(len(i) == 24 and int(i, 16) >= 0 for i in ids)
    assert second.next()[:12] != ids[0][:12]


def test_a_ready_float_tensor_skips_conversion_but_not_validation() -> None:
    from modelport.core.errors import ValidationError
    from modelport.core.types import Signature, TensorSpec
    from modelport.runtime.coercion import Coercer

    coercer = Coercer(
        Signature(kind="tensor", tensors=(TensorSpec(name="x", dtype="float64", shape=(-1, 3)),)), "array"
    )
    ready = np.array([[1.0, np.nan, 3.0]])
    assert coercer.coerce(ready) is ready  # NaN allowed for a float tensor, no copy
    assert coercer.coerce(np.array([[1, 2, 3]], dtype=np.float32)).dtype == np.float64  # other dtypes converted
    with pytest.raises(ValidationError, match="expected finite float64"):
        coercer.coerce(np.array([[1.0, np.inf, 3.0]]))
    with pytest.raises(ValidationError, match="expected shape"):
        coercer.coerce(np.zeros((2, 4)))
    with pytest.raises(ValidationError):
        coercer.coerce(np.zeros((0, 3)))
