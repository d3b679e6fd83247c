"""The prediction cache: LRU, TTL, read-only entries, stable keys, the JSON value codec, hits over HTTP."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from modelport.server.app import create_app
from modelport.server.cache import MemoryCache, cache_key, decode_results, encode_results
from modelport.server.config import ServerConfig

from .support import rows, serving, v2_body

pytestmark = pytest.mark.anyio


async def test_lru_evicts_the_least_recently_used() -> None:
    cache = MemoryCache(max_entries=2, ttl_s=60)
    await cache.set("a", {"predict": np.array([1])})
    await cache.set("b", {"predict": np.array([2])})
    assert await cache.get("a") is not None
    await cache.set("c", {"predict": np.array([3])})
    assert await cache.get("b") is None
    assert await cache.get("a") is not None
    assert len(cache) == 2


async def test_entries_expire() -> None:
    cache = MemoryCache(max_entries=10, ttl_s=1e-9)
    await cache.set("a", {"predict": np.array([1])})
    assert await cache.get("a") is None


async def test_entries_are_read_only_copies() -> None:
    cache = MemoryCache(max_entries=10, ttl_s=60)
    original = np.array([1.0, 2.0])
    await cache.set("a", {"predict": original})
    original[0] = 99.0
    hit = await cache.get("a")
    assert hit is not None
    assert hit["predict"].tolist() == [1.0, 2.0]
    with pytest.raises(ValueError, match="read-only"):
        hit["predict"][0] = 5.0


def test_keys_depend_on_model_version_outputs_and_data() -> None:
    base = cache_key("m", 1, ("predict",), {"a": np.array([1.0])})
    assert base == cache_key("m", 1, ("predict",), {"a": np.array([1.0])})
    assert base != cache_key("m", 2, ("predict",), {"a": np.array([1.0])})
    assert base != cache_key("m", 1, ("predict", "predict_proba"), {"a": np.array([1.0])})
    assert base != cache_key("m", 1, ("predict",), {"a": np.array([2.0])})
    assert cache_key("m", 1, ("predict",), [{"plan": "a"}]) != cache_key("m", 1, ("predict",), [{"plan": "b"}])


def test_codec_round_trips_numbers_and_text() -> None:
    value = {
        "predict": np.array(["yes", "no"], dtype=object),
        "predict_proba": np.array([[0.25, 0.75], [1.0, 0.0]], dtype=np.float32),
    }
    back = decode_results(encode_results(value))
    assert back["predict"].tolist() == ["yes", "no"]
    assert back["predict_proba"].dtype == np.float32
    np.testing.assert_array_equal(back["predict_proba"], value["predict_proba"])


async def test_identical_requests_are_answered_from_the_cache(iris_bundles: dict[int, Path]) -> None:
    config = ServerConfig(models=(str(iris_bundles[1]),), poll_interval_s=0, cache_url="memory")
    body = v2_body(rows(2), ("predict",))
    async with serving(create_app(config, registry=None)) as client:
        first = await client.post("/v2/models/iris/infer", json=body)
        second = await client.post("/v2/models/iris/infer", json=body)
        other = await client.post("/v2/models/iris/infer", json=v2_body(rows(2, start=70), ("predict",)))
        v1 = await client.post("/v1/models/iris:predict", json={"instances": rows(2)})
        metrics = (await client.get("/metrics")).text
    assert first.json()["outputs"] == second.json()["outputs"]
    assert other.status_code == 200
    assert v1.json()["predictions"] == first.json()["outputs"][0]["data"]
    assert 'modelport_cache_total{model="iris",result="hit"} 1.0' in metrics
    assert 'modelport_cache_total{model="iris",result="miss"} 3.0' in metrics
    assert 'modelport_batch_size_count{model="iris"} 3.0' in metrics


async def test_cache_is_per_model(iris_bundles: dict[int, Path]) -> None:
    config = ServerConfig(models=(str(iris_bundles[1]),), poll_interval_s=0, cache_url="memory", cache_models=("x",))
    async with serving(create_app(config, registry=None)) as client:
        for _ in range(2):
            await client.post("/v2/models/iris/infer", json=v2_body(rows(1)))
        metrics = (await client.get("/metrics")).text
    assert "modelport_cache_total{" not in metrics


async def test_an_unreachable_redis_is_a_miss_not_an_error(
    iris_bundles: dict[int, Path], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO")
    url = "redis://user:s3cret-pw@127.0.0.1:1/0"
    config = ServerConfig(models=(str(iris_bundles[1]),), poll_interval_s=0, cache_url=url)
    async with serving(create_app(config, registry=None)) as client:
        resp = await client.post("/v2/models/iris/infer", json=v2_body(rows(1)))
        metrics = (await client.get("/metrics")).text
    assert resp.status_code == 200
    assert 'modelport_cache_total{model="iris",result="error"} 1.0' in metrics
    assert "redis://user:***@127.0.0.1:1/0" in caplog.text
    assert "s3cret-pw" not in caplog.text
    assert "s3cret-pw" not in metrics
