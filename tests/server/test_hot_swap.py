"""Hot swap and the model repository: alias moves under load with zero failed requests, failed loads
keep the old version serving and are reported, and the V2 repository extension needs the admin scope."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from modelport.api.background import background_server
from modelport.bundle.io import load_bundle
from modelport.bundle.loaded import LoadedBundle
from modelport.core.errors import IntegrityError
from modelport.registry.registry import Registry
from modelport.server.app import create_app
from modelport.server.config import ServerConfig

from .support import rows, serving, v2_body

pytestmark = pytest.mark.anyio

ONE = v2_body(rows(1), ("predict",))
ADMIN = "admin-key-for-the-tests-0001"
PREDICT = "predict-key-for-the-tests-01"


def _config(**values: Any) -> ServerConfig:
    settings = {"models": ("iris@production",), "poll_interval_s": 0.05, "load_backoff_s": 0.01, "warmup_rows": 4}
    return ServerConfig(**{**settings, **values})


async def _version_now(client: httpx.AsyncClient) -> str:
    resp = await client.post("/v2/models/iris/infer", json=ONE)
    assert resp.status_code == 200, resp.text
    version: str = resp.json()["model_version"]
    return version


async def _until(client: httpx.AsyncClient, version: str, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while await _version_now(client) != version:
        assert time.monotonic() < deadline, f"version {version} never answered"
        await asyncio.sleep(0.02)


@asynccontextmanager
async def _client(app: Any, over: str) -> AsyncIterator[httpx.AsyncClient]:
    """A client of ``app`` in process (ASGI) or over a real socket (where predictions take the direct path)."""
    if over == "asgi":
        async with serving(app) as client:
            yield client
        return
    with background_server(app) as url:
        async with httpx.AsyncClient(base_url=url) as client:
            yield client


@pytest.mark.parametrize("over", ["asgi", "socket"])
async def test_alias_moves_back_and_forth_under_load_with_zero_errors(registry: Registry, over: str) -> None:
    statuses: dict[int, int] = {}
    versions: set[str] = set()
    stop = asyncio.Event()

    async def hammer(client: httpx.AsyncClient) -> None:
        while not stop.is_set():
            resp = await client.post("/v2/models/iris/infer", json=ONE)
            statuses[resp.status_code] = statuses.get(resp.status_code, 0) + 1
            if resp.status_code == 200:
                versions.add(resp.json()["model_version"])

    async with _client(create_app(_config(), registry=registry), over) as client:
        workers = [asyncio.ensure_future(hammer(client)) for _ in range(8)]
        for target in (2, 1, 2, 1):
            await asyncio.to_thread(registry.set_alias, "iris", "production", target)
            await _until(client, str(target))
        stop.set()
        await asyncio.gather(*workers)
        metrics = (await client.get("/metrics")).text
    assert set(statuses) == {200}, statuses
    assert sum(statuses.values()) > 50
    assert versions == {"1", "2"}
    assert 'modelport_model_ready{model="iris",version="2"} 0.0' in metrics
    assert 'modelport_model_ready{model="iris",version="1"} 1.0' in metrics


async def test_in_flight_request_finishes_on_the_old_version(registry: Registry) -> None:
    gate = threading.Event()
    entered = threading.Event()

    class Slow:
        def __init__(self, inner: Any) -> None:
            self.inner, self.input_format, self.classes, self.has_proba = inner, inner.input_format, inner.classes, True
            self.armed = False

        def predict(self, data: Any) -> np.ndarray:
            if self.armed:
                entered.set()
                gate.wait(10)
            return np.asarray(self.inner.predict(data))

        def predict_proba(self, data: Any) -> np.ndarray:
            return np.asarray(self.inner.predict_proba(data))

    adapters: list[Slow] = []

    def loader(path: Path) -> LoadedBundle:
        loaded = load_bundle(path)
        adapters.append(Slow(loaded.adapter))
        return dataclasses.replace(loaded, adapter=adapters[-1])

    config = _config(inline_below_ms=0)  # the gated model must not run on the event loop
    async with serving(create_app(config, registry=registry, loader=loader)) as client:
        adapters[0].armed = True
        slow = asyncio.ensure_future(client.post("/v2/models/iris/infer", json=ONE))
        await asyncio.to_thread(entered.wait, 5)
        await asyncio.to_thread(registry.set_alias, "iris", "production", 2)
        deadline = time.monotonic() + 20
        while (await client.get("/v2/models/iris")).json()["serving"]["version"] != "2":
            assert time.monotonic() < deadline
            await asyncio.sleep(0.02)
        assert await _version_now(client) == "2"
        assert not slow.done()
        gate.set()
        old = await slow
        assert old.status_code == 200
        assert old.json()["model_version"] == "1"


async def test_failed_load_keeps_the_old_version_and_is_reported(registry: Registry) -> None:
    attempts: list[str] = []

    def loader(path: Path) -> LoadedBundle:
        if path.name == "2":
            attempts.append(path.name)
            raise IntegrityError(f"artifact model.skops of {path.name} is truncated", hint="re-register")
        return load_bundle(path)

    async with serving(create_app(_config(api_keys=[ADMIN]), registry=registry, loader=loader)) as client:
        await asyncio.to_thread(registry.set_alias, "iris", "production", 2)
        deadline = time.monotonic() + 20
        while len(attempts) < 3:
            assert time.monotonic() < deadline
            assert await _version_now_with_key(client) == "1"
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.2)
        assert await _version_now_with_key(client) == "1"
        index = (await client.post("/v2/repository/index", headers=_auth(ADMIN))).json()
        failed = next(row for row in index if row["state"] == "UNAVAILABLE")
        assert failed["version"] == "2"
        assert failed["reason"].startswith("load_failed: IntegrityError:")
        assert "truncated" in failed["reason"]
        assert (await client.get("/v2/health/ready")).status_code == 200
        v2_ready = await client.get("/v2/models/iris/versions/2/ready", headers=_auth(ADMIN))
        assert v2_ready.status_code == 503
        assert "truncated" in v2_ready.json()["error"]
        metrics = (await client.get("/metrics", headers=_auth(ADMIN))).text
    assert len(attempts) == 3
    assert 'modelport_model_loads_total{model="iris",result="failed"} 1.0' in metrics


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def _version_now_with_key(client: httpx.AsyncClient) -> str:
    resp = await client.post("/v2/models/iris/infer", json=ONE, headers=_auth(ADMIN))
    assert resp.status_code == 200, resp.text
    version: str = resp.json()["model_version"]
    return version


async def test_a_model_that_fails_at_start_is_reported_and_others_serve(registry: Registry, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "modelport.yaml").write_text("name: [unclosed")
    config = _config(models=("iris@production", str(broken)))
    async with serving(create_app(config, registry=registry)) as client:
        ready = await client.get("/v2/health/ready")
        assert ready.status_code == 503
        assert "broken" in ready.json()["error"]
        assert "resolve_failed: IntegrityError" in ready.json()["error"]
        assert "not valid" in ready.json()["error"]
        assert (await client.post("/v2/models/iris/infer", json=ONE)).status_code == 200
        assert (await client.get("/v2/health/live")).status_code == 200


async def test_repository_extension_needs_admin_and_loads_and_unloads(registry: Registry) -> None:
    config = _config(api_keys=[ADMIN, f"predict:{PREDICT}"], poll_interval_s=0)
    async with serving(create_app(config, registry=registry)) as client:
        assert (await client.post("/v2/repository/index")).status_code == 401
        assert (await client.post("/v2/repository/index", headers=_auth(PREDICT))).status_code == 403
        index = await client.post("/v2/repository/index", json={"ready": True}, headers=_auth(ADMIN))
        assert index.status_code == 200
        assert [(r["name"], r["version"], r["state"]) for r in index.json()] == [("iris", "1", "READY")]
        unload = await client.post("/v2/repository/models/iris/unload", headers=_auth(ADMIN))
        assert unload.status_code == 200
        gone = await client.post("/v2/models/iris/infer", json=ONE, headers=_auth(PREDICT))
        assert gone.status_code == 404
        assert (await client.post("/v2/repository/models/iris/unload", headers=_auth(ADMIN))).status_code == 404
        load = await client.post("/v2/repository/models/iris/load", headers=_auth(ADMIN))
        assert load.status_code == 200, load.text
        assert load.json()["loaded"] is True
        back = await client.post("/v2/models/iris/infer", json=ONE, headers=_auth(PREDICT))
        assert back.json()["model_version"] == "1"
        unknown = await client.post("/v2/repository/models/churn/load", headers=_auth(ADMIN))
        assert unknown.status_code == 404
        for name in (".hidden", "UPPER", "a..b"):
            bad = await client.post(f"/v2/repository/models/{name}/load", headers=_auth(ADMIN))
            assert bad.status_code == 400, name
            assert bad.json()["type"] == "InvalidName"
        slashed = await client.post("/v2/repository/models/..%2F..%2Fetc/load", headers=_auth(ADMIN))
        assert slashed.status_code == 404  # a decoded '/' never matches the {name} segment
