"""Every route declares its auth policy; with keys on, nothing but health answers without one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Mount, Route

from modelport.server.app import create_app
from modelport.server.auth import POLICIES
from modelport.server.config import ServerConfig
from modelport.server.openapi import build_document
from modelport.server.routes import ROUTES, Guarded

from .support import rows, serving, v2_body

pytestmark = pytest.mark.anyio

KEY = "a-long-enough-admin-key-000001"


@pytest.fixture
def app(iris_bundles: dict[int, Path]) -> Any:
    config = ServerConfig(models=(str(iris_bundles[1]),), poll_interval_s=0, api_keys=[KEY], auth_failure_limit=5)
    return create_app(config, registry=None)


def _concrete(path: str) -> str:
    return path.replace("{name}", "iris").replace("{version}", "1")


def test_every_route_declares_a_policy(app: Any) -> None:
    for route in app.routes:
        assert isinstance(route, Route | Mount), route
        endpoint = route.endpoint if isinstance(route, Route) else route.app
        assert isinstance(endpoint, Guarded), f"{route.path} has no auth policy"
        assert endpoint.policy in POLICIES


def test_the_route_table_and_the_docs_agree(app: Any) -> None:
    served = {(r.path, m) for r in app.routes for m in (r.methods or ()) if m != "HEAD"}
    assert served == {(s.path, s.method) for s in ROUTES}
    document = build_document("test")
    for spec in ROUTES:
        assert document["paths"][spec.path][spec.method.lower()]["x-auth-policy"] == spec.policy


def test_only_health_is_public() -> None:
    public = {s.path for s in ROUTES if s.policy == "public"}
    assert public == {"/v2/health/live", "/v2/health/ready", "/ping", "/"}  # "/": KServe V1 liveness
    admin = {s.path for s in ROUTES if s.policy == "admin"}
    assert all(p.startswith("/v2/repository") for p in admin)


async def test_with_keys_on_nothing_but_health_answers_without_one(iris_bundles: dict[int, Path]) -> None:
    config = ServerConfig(models=(str(iris_bundles[1]),), poll_interval_s=0, api_keys=[KEY], auth_failure_limit=100)
    async with serving(create_app(config, registry=None)) as client:
        for spec in ROUTES:
            resp = await client.request(spec.method, _concrete(spec.path), json={})
            if spec.policy == "public":
                assert resp.status_code == 200, spec.path
            else:
                assert resp.status_code == 401, spec.path
                assert resp.headers["www-authenticate"].startswith("Bearer")
                assert resp.json()["type"] == "Unauthenticated"


async def test_a_key_opens_the_routes(app: Any) -> None:
    async with serving(app, authorization=f"Bearer {KEY}") as client:
        assert (await client.post("/v2/models/iris/infer", json=v2_body(rows(1)))).status_code == 200
        assert (await client.get("/metrics")).status_code == 200
        assert (await client.get("/docs")).status_code == 200
    async with serving(app, **{"x-api-key": KEY}) as client:
        assert (await client.post("/v1/models/iris:predict", json={"instances": rows(1)})).status_code == 200


async def test_repeated_failures_get_429(app: Any) -> None:
    async with serving(app, authorization="Bearer wrong-key-wrong-key-wrong") as client:
        statuses = [(await client.get("/v2")).status_code for _ in range(7)]
        assert statuses == [401] * 5 + [429] * 2
        limited = await client.get("/v2", headers={"authorization": f"Bearer {KEY}"})
        assert limited.status_code == 429
        assert int(limited.headers["retry-after"]) >= 1
        assert (await client.get("/v2/health/ready")).status_code == 200
        text = (await client.get("/v2/health/live")).text
    assert "wrong-key" not in text


async def test_keys_never_reach_logs_or_metrics(app: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("DEBUG")
    async with serving(app, authorization=f"Bearer {KEY}") as client:
        await client.post("/v2/models/iris/infer", json=v2_body(rows(1)))
        await client.get("/v2", headers={"authorization": "Bearer some-wrong-key-123456"})
        metrics = (await client.get("/metrics")).text
    assert KEY not in caplog.text
    assert "some-wrong-key" not in caplog.text
    assert KEY not in metrics
    assert "modelport_auth_failures_total 1.0" in metrics


async def test_extra_routes_and_mounts_are_guarded_and_documented(iris_bundles: dict[int, Path]) -> None:
    async def feedback(request: Request) -> JSONResponse:
        """Record ground truth for earlier predictions."""
        return JSONResponse({"ok": True})

    async def page(request: Request) -> PlainTextResponse:
        return PlainTextResponse(str(request.url_for("dashboard:home")))

    dashboard = Starlette(routes=[Route("/", page, name="home")])
    extra = [
        (Route("/v2/feedback", feedback, methods=["POST"], name="feedback"), "predict"),
        (Mount("/dashboard", app=dashboard, name="dashboard"), "admin"),
    ]
    config = ServerConfig(models=(str(iris_bundles[1]),), poll_interval_s=0, api_keys=[KEY, f"predict:{KEY}-p"])
    app = create_app(config, registry=None, extra_routes=extra)
    for route in app.routes:
        endpoint = route.endpoint if isinstance(route, Route) else route.app
        assert isinstance(endpoint, Guarded)
    async with serving(app) as client:
        assert (await client.post("/v2/feedback")).status_code == 401
        assert (await client.post("/v2/feedback", headers={"x-api-key": f"{KEY}-p"})).status_code == 200
        assert (await client.get("/dashboard/", headers={"x-api-key": f"{KEY}-p"})).status_code == 403
        home = await client.get("/dashboard/", headers={"x-api-key": KEY})
        assert home.status_code == 200
        assert home.text.endswith("/dashboard/")
        doc = (await client.get("/openapi.json", headers={"x-api-key": KEY})).json()
    assert doc["paths"]["/v2/feedback"]["post"]["x-auth-policy"] == "predict"
    assert doc["paths"]["/v2/feedback"]["post"]["summary"] == "Record ground truth for earlier predictions."
    assert doc["paths"]["/dashboard/{path}"]["get"]["x-auth-policy"] == "admin"
