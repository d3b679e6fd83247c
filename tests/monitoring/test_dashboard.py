"""The dashboard's page and JSON API, mounted under /dashboard as the server does."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount

from modelport.core.errors import ValidationError
from modelport.monitoring.dashboard import ASSETS, create_dashboard_app

from . import scenario

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[scenario.Scenario]:
    built = scenario.build(tmp_path_factory.mktemp("dashboard"))
    yield built
    built.registry.close()


@pytest.fixture
async def client(world: scenario.Scenario) -> AsyncIterator[httpx.AsyncClient]:
    dashboard = create_dashboard_app(
        world.log_dir, feedback_dir=world.feedback_dir, registry=world.registry, runs=world.runs, title="acme"
    )
    app = Starlette(routes=[Mount("/dashboard", app=dashboard)])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as c:
        yield c


async def test_the_page_and_its_assets_are_served_under_the_mount(client: httpx.AsyncClient) -> None:
    redirect = await client.get("/dashboard")
    assert redirect.status_code in (307, 308)
    assert redirect.headers["location"].endswith("/dashboard/")
    page = await client.get("/dashboard/")
    assert page.status_code == 200
    assert 'data-base="/dashboard/"' in page.text
    assert 'src="/dashboard/assets/dashboard.js"' in page.text
    assert "<title>acme · monitoring</title>" in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    for name in ("dashboard.js", "charts.js", "dashboard.css"):
        asset = await client.get(f"/dashboard/assets/{name}")
        assert asset.status_code == 200
        assert len(asset.content) > 1000
    assert (await client.get("/dashboard/assets/../dashboard.py")).status_code == 404


def test_assets_need_no_internet() -> None:
    for path in ASSETS.iterdir():
        text = path.read_text(encoding="utf-8")
        assert "http://" not in text.replace("http://www.w3.org/2000/svg", ""), path.name
        assert "https://" not in text, path.name


async def test_models_traffic_and_drift(client: httpx.AsyncClient, world: scenario.Scenario) -> None:
    models = (await client.get("/dashboard/api/models")).json()
    assert models["models"][0]["name"] == "churn"
    assert models["models"][0]["versions"] == [1, 2]
    assert models["models"][0]["aliases"] == {"production": 2, "staging": 2}
    traffic = (await client.get("/dashboard/api/models/churn/traffic", params={"window": "24h"})).json()
    assert traffic["totals"]["predictions"] == world.predictions
    assert traffic["totals"]["errors"] == world.errors
    assert traffic["versions"] == [1, 2]
    assert len(traffic["points"]) > 20
    drift = (await client.get("/dashboard/api/models/churn/drift", params={"window": "24h"})).json()
    assert drift["available"]
    assert drift["version"] == 2
    assert drift["drifted_features"] == ["age"]
    v1 = (await client.get("/dashboard/api/models/churn/drift", params={"window": "24h", "version": "1"})).json()
    assert v1["version"] == 1
    assert v1["drifted_features"] == []


async def test_live_metrics_aliases_and_runs(client: httpx.AsyncClient) -> None:
    quality = (await client.get("/dashboard/api/models/churn/performance", params={"window": "24h"})).json()
    assert quality["task"] == "classification"
    assert quality["labelled"] == 450 + 336
    assert {p["version"] for p in quality["overall"]} == {1, 2}
    assert all(0.5 < p["accuracy"] <= 1 and p["roc_auc"] is not None for p in quality["overall"])
    aliases = (await client.get("/dashboard/api/models/churn/aliases")).json()
    assert [(e["alias"], e["new_version"]) for e in aliases["history"]] == [
        ("staging", 1), ("production", 1), ("staging", 2), ("production", 2),
    ]  # fmt: skip
    runs = (await client.get("/dashboard/api/models/churn/runs")).json()
    assert [r["status"] for r in runs["runs"]] == ["completed", "failed", "completed"]
    assert "secret" not in str(runs)
    assert "destination" not in runs["runs"][0]


@pytest.mark.parametrize(
    ("path", "status", "error_type"),
    [
        ("/dashboard/api/models/churn/traffic?window=forever", 422, "ValidationError"),
        ("/dashboard/api/models/churn/drift?version=two", 422, "ValidationError"),
        ("/dashboard/api/models/Not..A..Name/traffic", 400, "InvalidName"),
        ("/dashboard/api/nothing", 404, "HTTPError"),
    ],
)
async def test_bad_requests_answer_json_errors(
    client: httpx.AsyncClient, path: str, status: int, error_type: str
) -> None:
    response = await client.get(path)
    assert response.status_code == status
    assert response.json()["type"] == error_type


async def test_without_registry_or_feedback_the_panels_say_so(world: scenario.Scenario) -> None:
    app = create_dashboard_app(world.log_dir)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as c:
        page = await c.get("/")
        assert 'data-base="/"' in page.text
        drift = (await c.get("/api/models/churn/drift")).json()
        assert drift == {"available": False, "version": 2, "reason": "No reference statistics for v2"}
        assert (await c.get("/api/models/churn/performance")).json()["task"] is None
        assert (await c.get("/api/models/churn/aliases")).json() == {"aliases": {}, "history": []}
        assert (await c.get("/api/models/churn/runs")).json() == {"runs": []}
        empty = (await c.get("/api/models/ghost/drift")).json()
        assert empty == {"available": False, "reason": "No prediction logged in this window"}


def test_a_bad_default_window_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValidationError):
        create_dashboard_app(tmp_path, default_window="always")
