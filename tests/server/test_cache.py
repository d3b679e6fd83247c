"""The in-memory prediction cache: LRU, TTL, read-only entries, stable keys; the JSON value codec."""

from __future__ import annotations

import numpy as np
import pytest

from modelport.server.cache import MemoryCache, cache_key, decode_results, encode_results

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
