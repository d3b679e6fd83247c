"""Releases in the server: canary split within binomial bounds, sticky users, shadow never touching the
primary (slow and failing shadows), automatic rollback of a faulty canary (audited), and a protected
alias never served from a version that did not pass its promotion policy."""

from __future__ import annotations

import asyncio
import dataclasses
import math
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from modelport.bundle.io import load_bundle
from modelport.bundle.loaded import LoadedBundle
from modelport.registry.policies import Policy
from modelport.registry.registry import Registry
from modelport.registry.releases import ReleaseConfig, RollbackRule
from modelport.server.app import create_app
from modelport.server.config import ServerConfig
from modelport.server.release_routing import ReleaseSettings, is_failure
from modelport.server.releases import Router

from .support import rows, serving, v2_body

pytestmark = pytest.mark.anyio

ONE = v2_body(rows(1), ("predict",))
LENIENT = RollbackRule(max_p99_ratio=1000.0, min_p99_increase_ms=60_000.0)
"""A rule that never fires on latency: tests of the split must not depend on timing."""


def _config(**values: Any) -> ServerConfig:
    settings = {"models": ("iris@production",), "poll_interval_s": 0.05, "warmup_rows": 4, "inference_threads": 4}
    return ServerConfig(**{**settings, **values})


def _fast(**values: Any) -> ReleaseSettings:
    return ReleaseSettings(**{"check_interval_s": 0.05, "report_interval_s": 0.2, "reporter": "test-1", **values})


def _start(registry: Registry, **values: Any) -> ReleaseConfig:
    admin = registry.users.open_principal("tester")
    return registry.releases.start(ReleaseConfig(model="iris", primary_version=1, **values), by=admin)


class Armed:
    """Wraps a model adapter; once armed, ``predict`` runs ``action`` first (block, raise)."""

    def __init__(self, inner: Any, action: Callable[[], None]) -> None:
        self.inner, self.action, self.armed = inner, action, False
        self.input_format, self.classes, self.has_proba = inner.input_format, inner.classes, True

    def predict(self, data: Any) -> np.ndarray:
        if self.armed:
            self.action()
        return np.asarray(self.inner.predict(data))

    def predict_proba(self, data: Any) -> np.ndarray:
        return np.asarray(self.inner.predict_proba(data))


def _loader(version: str, action: Callable[[], None], adapters: list[Armed]) -> Callable[[Path], LoadedBundle]:
    """A bundle loader wrapping the adapter of registry version ``version`` in :class:`Armed`."""

    def load(path: Path) -> LoadedBundle:
        loaded = load_bundle(path)
        if path.name != version:
            return loaded
        adapters.append(Armed(loaded.adapter, action))
        return dataclasses.replace(loaded, adapter=adapters[-1])

    return load


async def _until(check: Callable[[], Awaitable[bool]], what: str, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not await check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


async def _serves(client: httpx.AsyncClient, version: str) -> bool:
    resp = await client.post(f"/v2/models/iris/versions/{version}/infer", json=ONE)
    return resp.status_code == 200


async def _metric(client: httpx.AsyncClient, name: str) -> float:
    for line in (await client.get("/metrics")).text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_is_failure_counts_server_errors_only() -> None:
    from modelport.core.errors import BadRequest, ServiceUnavailable

    assert not is_failure(None)
    assert not is_failure(BadRequest("bad column", hint="fix it"))
    assert is_failure(ServiceUnavailable("down", hint="retry"))
    assert is_failure(RuntimeError("model crashed"))


async def test_canary_split_is_within_binomial_bounds(registry: Registry) -> None:
    release = _start(registry, canary_version=2, canary_weight=10, rollback=LENIENT)
    n, p = 2000, 0.10
    answered: Counter[str] = Counter()
    routes: Counter[str] = Counter()
    app = create_app(_config(version_headers=True), registry=registry, release_settings=_fast(seed=7))
    async with serving(app) as client:
        await _until(lambda: _serves(client, "2"), "the canary to load")
        for _ in range(n // 100):
            replies = await asyncio.gather(*(client.post("/v2/models/iris/infer", json=ONE) for _ in range(100)))
            for resp in replies:
                assert resp.status_code == 200, resp.text
                answered[resp.json()["model_version"]] += 1
                routes[resp.headers["x-model-version"]] += 1
    assert set(answered) == {"1", "2"}
    assert answered == routes  # the body and the header name the same version
    half_width = 3.29 * math.sqrt(n * p * (1 - p))  # a 99.9 % interval
    assert abs(answered["2"] - n * p) <= half_width, answered
    assert release.id is not None
    traffic = {(s.version, s.route): s for s in registry.releases.traffic(release.id)}
    assert traffic[(2, "canary")].requests == answered["2"]
    assert traffic[(1, "primary")].requests == answered["1"]


async def test_sticky_header_pins_each_user_to_one_version(registry: Registry) -> None:
    _start(registry, canary_version=2, canary_weight=50, sticky_header="X-User-Id", rollback=LENIENT)
    seen: dict[str, set[str]] = {}
    async with serving(create_app(_config(), registry=registry, release_settings=_fast())) as client:
        await _until(lambda: _serves(client, "2"), "the canary to load")
        for attempt in range(4):
            for user in range(40):
                headers = {"X-User-Id": f"user-{user}"} if attempt % 2 == 0 else {"x-user-id": f"user-{user}"}
                resp = await client.post("/v2/models/iris/infer", json=ONE, headers=headers)
                assert resp.status_code == 200, resp.text
                seen.setdefault(f"user-{user}", set()).add(resp.json()["model_version"])
    assert all(len(versions) == 1 for versions in seen.values()), seen
    assert {next(iter(v)) for v in seen.values()} == {"1", "2"}  # both sides get users


def test_a_sticky_user_keeps_the_canary_when_the_weight_grows() -> None:
    base = ReleaseConfig(model="iris", primary_version=1, canary_version=2, canary_weight=10, sticky_header="U")
    small, large = Router(base), Router(dataclasses.replace(base, canary_weight=60))
    on_canary = [u for u in range(500) if small.choose({"U": str(u)})[1] == "canary"]
    assert on_canary
    assert all(large.choose({"U": str(u)})[1] == "canary" for u in on_canary)


async def test_a_slow_shadow_never_holds_the_primary_and_drops_are_counted(registry: Registry) -> None:
    gate, entered = threading.Event(), threading.Event()

    def block() -> None:
        entered.set()
        gate.wait(20)

    adapters: list[Armed] = []
    app = create_app(
        _config(inline_below_ms=0),
        registry=registry,
        loader=_loader("2", block, adapters),
        release_settings=_fast(shadow_queue=2),
    )
    _start(registry, shadow_version=2)
    try:
        async with serving(app) as client:
            await _until(lambda: _serves(client, "2"), "the shadow to load")
            adapters[-1].armed = True
            first = await client.post("/v2/models/iris/infer", json=ONE)
            assert first.status_code == 200
            await asyncio.to_thread(entered.wait, 10)  # the shadow is stuck in its model call now
            replies = await asyncio.gather(*(client.post("/v2/models/iris/infer", json=ONE) for _ in range(30)))
            assert [r.status_code for r in replies] == [200] * 30
            assert {r.json()["model_version"] for r in replies} == {"1"}  # a shadow never answers
            assert not gate.is_set()  # every primary answer came while the shadow was still blocked
            assert await _metric(client, "modelport_shadow_dropped_total") >= 28
            assert await _metric(client, "modelport_shadow_processed_total") == 0
            gate.set()
            await _until(
                lambda: _metric_at_least(client, "modelport_shadow_processed_total", 1), "the shadow to catch up"
            )
    finally:
        gate.set()


async def _metric_at_least(client: httpx.AsyncClient, name: str, value: float) -> bool:
    return await _metric(client, name) >= value


async def test_a_failing_shadow_never_fails_the_primary(registry: Registry) -> None:
    def crash() -> None:
        raise RuntimeError("shadow model crashed")

    adapters: list[Armed] = []
    app = create_app(_config(), registry=registry, loader=_loader("2", crash, adapters), release_settings=_fast())
    release = _start(registry, shadow_version=2)
    async with serving(app) as client:
        await _until(lambda: _serves(client, "2"), "the shadow to load")
        adapters[-1].armed = True
        for _ in range(5):
            replies = await asyncio.gather(*(client.post("/v2/models/iris/infer", json=ONE) for _ in range(4)))
            assert [r.status_code for r in replies] == [200] * 4
            assert {r.json()["model_version"] for r in replies} == {"1"}
        await _until(lambda: _metric_at_least(client, "modelport_shadow_failed_total", 20), "the shadow failures")
    assert release.id is not None
    shadow = {s.route: s for s in registry.releases.traffic(release.id)}["shadow"]
    assert (shadow.version, shadow.requests, shadow.errors) == (2, 20, 20)
    assert registry.releases.active("iris") is not None  # a failing shadow is no reason to end the release


async def test_a_healthy_shadow_is_compared_with_the_primary(registry: Registry) -> None:
    release = _start(registry, shadow_version=2)
    records = rows(150)
    async with serving(create_app(_config(), registry=registry, release_settings=_fast())) as client:
        await _until(lambda: _serves(client, "2"), "the shadow to load")
        resp = await client.post("/v2/models/iris/infer", json=v2_body(records, ("predict",)))
        assert resp.status_code == 200
        await _until(lambda: _metric_at_least(client, "modelport_shadow_processed_total", 1), "the shadow run")
    assert release.id is not None
    shadow = {s.route: s for s in registry.releases.traffic(release.id)}["shadow"]
    assert shadow.compared == 150
    assert 0 < shadow.agreed < 150  # the heavily regularised v2 disagrees on some iris rows


async def test_a_faulty_canary_is_rolled_back_automatically_and_audited(registry: Registry) -> None:
    def crash() -> None:
        raise RuntimeError("canary model crashed")

    adapters: list[Armed] = []
    rule = RollbackRule(window_s=60, min_requests=10, max_p99_ratio=1000.0, min_p99_increase_ms=60_000.0)
    app = create_app(_config(), registry=registry, loader=_loader("2", crash, adapters), release_settings=_fast())
    release = _start(registry, canary_version=2, canary_weight=50, rollback=rule)
    statuses: Counter[int] = Counter()
    async with serving(app) as client:
        await _until(lambda: _serves(client, "2"), "the canary to load")
        adapters[-1].armed = True

        async def rolled_back() -> bool:
            replies = await asyncio.gather(*(client.post("/v2/models/iris/infer", json=ONE) for _ in range(10)))
            statuses.update(r.status_code for r in replies)
            return registry.releases.active("iris") is None

        await _until(rolled_back, "the automatic rollback")
        replies = await asyncio.gather(*(client.post("/v2/models/iris/infer", json=ONE) for _ in range(50)))
        assert [r.status_code for r in replies] == [200] * 50
        assert {r.json()["model_version"] for r in replies} == {"1"}
        assert await _metric(client, "modelport_release_rollbacks_total") == 1
    assert statuses[500] >= 10  # the canary's own failures, before the rollback
    ended = registry.releases.get(release.id or 0)
    assert ended.state == "rolled_back"
    assert ended.ended_by == "server:test-1"
    assert "canary error rate" in str(ended.end_reason)
    entry = [e for e in registry.audit("iris") if e.action == "release.rollback"][-1]
    assert entry.actor == "server:test-1"
    assert entry.details["canary"]["errors"] >= 10


async def test_an_unapproved_version_is_never_served_under_a_protected_alias(registry: Registry) -> None:
    admin = registry.users.open_principal("tester")
    registry.policies.set(Policy(protected_aliases=("production",), approvals=1), by=admin)
    admin_key = "admin-key-for-the-tests-0001"
    app = create_app(_config(api_keys=[admin_key]), registry=registry)
    async with serving(app, authorization=f"Bearer {admin_key}") as client:
        assert (await client.post("/v2/models/iris/infer", json=ONE)).json()["model_version"] == "1"
        await asyncio.to_thread(registry.set_alias, "iris", "production", 2)  # around the promotion workflow

        async def refused() -> bool:
            index = (await client.post("/v2/repository/index")).json()
            return any(r["state"] == "UNAVAILABLE" and "promotion workflow" in r["reason"] for r in index)

        await _until(refused, "the server to refuse iris:2")
        for _ in range(5):
            resp = await client.post("/v2/models/iris/infer", json=ONE)
            assert (resp.status_code, resp.json()["model_version"]) == (200, "1")  # the cleared version serves on
    async with serving(create_app(_config(), registry=registry)) as client:
        resp = await client.post("/v2/models/iris/infer", json=ONE)
        assert resp.status_code == 503
        assert "iris:2 never went through the promotion workflow" in resp.json()["error"]


async def test_routes_reach_the_prediction_log_and_alias_routes_follow_the_release(
    registry: Registry, tmp_path: Path
) -> None:
    import pyarrow.parquet as pq

    _start(registry, canary_version=2, canary_weight=100, rollback=LENIENT)
    admin = registry.users.open_principal("tester")
    registry.releases.set_shadow("iris", 2, by=admin)  # the canary answers and is shadowed too
    logs = tmp_path / "logs"
    async with serving(create_app(_config(prediction_log_dir=logs), registry=registry)) as client:
        await _until(lambda: _serves(client, "2"), "the canary to load")
        by_route = {}
        for path in ("/v2/models/iris/infer", "/v2/models/iris/versions/production/infer"):
            resp = await client.post(path, json=v2_body(rows(3), ("predict",)))
            assert (resp.status_code, resp.json()["model_version"]) == (200, "2"), path
            by_route[path] = resp.headers["x-request-id"]
        pinned = await client.post("/v2/models/iris/versions/1/infer", json=ONE)  # an explicit version bypasses
        assert pinned.json()["model_version"] == "1"
        await _until(lambda: _metric_at_least(client, "modelport_shadow_processed_total", 2), "the shadow runs")
    records = [row for f in sorted(logs.rglob("*.parquet")) for row in pq.read_table(f).to_pylist()]
    for request_id in by_route.values():
        routes = Counter((r["route"], r["version"]) for r in records if r["request_id"] == request_id)
        assert routes == {("canary", 2): 3, ("shadow", 2): 3}
    assert {(r["route"], r["version"]) for r in records if r["request_id"] == pinned.headers["x-request-id"]} == {
        ("primary", 1)
    }
