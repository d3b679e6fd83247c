"""The prediction cache on the local Redis: hits across identical requests, JSON values with a TTL.

The ``redis_url`` fixture fails (never skips) under ``CI=true`` when Redis is unreachable.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from modelport.server.app import create_app
from modelport.server.config import ServerConfig
from server.support import rows, save_iris, serving, v2_body

pytestmark = [pytest.mark.integration, pytest.mark.anyio]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def clean_redis(redis_url: str) -> Iterator[str]:
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    yield redis_url
    client.flushdb()
    client.close()


async def test_identical_requests_hit_redis(clean_redis: str, tmp_path: Path) -> None:
    bundle = save_iris(tmp_path / "iris", c=1.0)
    config = ServerConfig(models=(str(bundle),), poll_interval_s=0, cache_url=clean_redis, cache_ttl_s=30)
    body = v2_body(rows(2), ("predict", "predict_proba"))
    async with serving(create_app(config, registry=None)) as client:
        first = await client.post("/v2/models/iris/infer", json=body)
        second = await client.post("/v2/models/iris/infer", json=body)
        metrics = (await client.get("/metrics")).text
    assert first.status_code == second.status_code == 200
    assert first.json()["outputs"] == second.json()["outputs"]
    assert 'modelport_cache_total{model="iris",result="hit"} 1.0' in metrics
    assert 'modelport_cache_total{model="iris",result="miss"} 1.0' in metrics
    client = redis.Redis.from_url(clean_redis)
    keys = client.keys("modelport:iris:1:*")
    assert len(keys) == 1
    ttl = client.pttl(keys[0])
    assert 0 < ttl <= 30_000
    value = client.get(keys[0])
    assert value is not None
    assert value.startswith(b"{")
    client.close()


async def test_a_second_server_shares_the_entries(clean_redis: str, tmp_path: Path) -> None:
    bundle = save_iris(tmp_path / "iris", c=1.0)
    config = ServerConfig(models=(str(bundle),), poll_interval_s=0, cache_url=clean_redis)
    body = v2_body(rows(1), ("predict",))
    async with serving(create_app(config, registry=None)) as client:
        await client.post("/v2/models/iris/infer", json=body)
    async with serving(create_app(config, registry=None)) as client:
        again = await client.post("/v2/models/iris/infer", json=body)
        metrics = (await client.get("/metrics")).text
    assert again.status_code == 200
    assert 'modelport_cache_total{model="iris",result="hit"} 1.0' in metrics
