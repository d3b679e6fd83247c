"""The prediction cache: identical inputs to the same model version answered without scoring.

Two backends behind one :class:`PredictionCache` protocol: :class:`MemoryCache` (LRU with a TTL,
per process) and :class:`RedisCache` (shared by every worker; values stored as JSON, never
pickle). Keys are a sha256 of the model name, version, requested outputs and the parsed input, so a
new version never answers from an old one's entries. A failing cache is a miss: it never fails or
blocks a request for long.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections import OrderedDict
from typing import Any, Protocol

import numpy as np
import orjson

from modelport.core.redact import redact_url
from modelport.server.protocols.tensors import dumps

logger = logging.getLogger("modelport.server")

Results = dict[str, np.ndarray]


class PredictionCache(Protocol):
    """Where cached predictions live."""

    async def get(self, key: str) -> Results | None:
        """The results stored under ``key``, or ``None`` (also on any backend error)."""
        ...

    async def set(self, key: str, value: Results) -> None:
        """Store ``value`` under ``key`` for the configured TTL (errors are logged, not raised)."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...


def cache_key(model: str, version: int, outputs: tuple[str, ...], data: Any) -> str:
    """A stable key for one prediction request."""
    digest = hashlib.sha256(dumps({"o": outputs, "d": data})).hexdigest()
    return f"modelport:{model}:{version}:{digest}"


class MemoryCache:
    """An in-process LRU with a TTL.

    Args:
        max_entries: Entries kept; the least recently used go first.
        ttl_s: Lifetime of an entry.
    """

    def __init__(self, max_entries: int, ttl_s: float) -> None:
        self.max_entries = max_entries
        self.ttl_s = ttl_s
        self._entries: OrderedDict[str, tuple[float, Results]] = OrderedDict()

    async def get(self, key: str) -> Results | None:
        """Return a live entry and mark it recently used."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        expires, value = entry
        if expires < time.monotonic():
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return value

    async def set(self, key: str, value: Results) -> None:
        """Store read-only copies of ``value``."""
        frozen = {}
        for name, arr in value.items():
            copy = np.array(arr, copy=True)
            copy.flags.writeable = False
            frozen[name] = copy
        self._entries[key] = (time.monotonic() + self.ttl_s, frozen)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    async def close(self) -> None:
        """Drop every entry."""
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


def encode_results(value: Results) -> bytes:
    """JSON of ``{output: {"dtype", "shape", "data"}}`` (object arrays as lists)."""
    return dumps(
        {
            name: {
                "dtype": "O" if arr.dtype.kind == "O" else arr.dtype.str,
                "shape": list(arr.shape),
                "data": arr.ravel(),
            }
            for name, arr in value.items()
        }
    )


def decode_results(raw: bytes) -> Results:
    """Inverse of :func:`encode_results`."""
    doc = orjson.loads(raw)
    out: Results = {}
    for name, item in doc.items():
        dtype = np.dtype(object) if item["dtype"] == "O" else np.dtype(item["dtype"])
        if dtype.kind == "O":
            arr = np.empty(len(item["data"]), dtype=object)
            arr[:] = item["data"]
        else:
            arr = np.asarray(item["data"], dtype=dtype)
        out[name] = arr.reshape(item["shape"])
    return out


class RedisCache:
    """Predictions in Redis, as JSON with an expiry.

    Args:
        url: ``redis://[user:password@]host:port/db``.
        ttl_s: Lifetime of an entry.
        timeout_s: Socket timeout; a slow Redis is a miss, not a slow request.
    """

    def __init__(self, url: str, ttl_s: float, *, timeout_s: float = 0.25) -> None:
        self.url = url
        self.ttl_s = ttl_s
        self.timeout_s = timeout_s
        self._client: Any = None

    def _redis(self) -> Any:
        if self._client is None:
            import redis.asyncio as aioredis

            self._client = aioredis.Redis.from_url(
                self.url, socket_timeout=self.timeout_s, socket_connect_timeout=self.timeout_s
            )
        return self._client

    async def get(self, key: str) -> Results | None:
        """Fetch and decode; any error is logged and treated as a miss."""
        try:
            raw = await self._redis().get(key)
            return None if raw is None else decode_results(raw)
        except Exception as exc:  # a cache must never fail a request
            logger.warning("Prediction cache %s: get failed (%s)", redact_url(self.url), type(exc).__name__)
            raise CacheUnavailableError from exc

    async def set(self, key: str, value: Results) -> None:
        """Store with ``PX`` expiry; errors are logged."""
        try:
            await self._redis().set(key, encode_results(value), px=max(1, int(self.ttl_s * 1000)))
        except Exception as exc:  # a cache must never fail a request
            logger.warning("Prediction cache %s: set failed (%s)", redact_url(self.url), type(exc).__name__)

    async def close(self) -> None:
        """Close the connection pool."""
        if self._client is not None:
            await self._client.aclose()
            self._client = None


class CacheUnavailableError(Exception):
    """The cache backend failed; the caller scores the request and counts a cache error."""


def open_cache(url: str, *, ttl_s: float, max_entries: int) -> PredictionCache:
    """Build the cache named by ``url`` (``memory`` or ``redis://...``); connects lazily."""
    if url == "memory":
        return MemoryCache(max_entries, ttl_s)
    return RedisCache(url, ttl_s)
