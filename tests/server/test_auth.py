"""API keys: hashing, scopes, route policies, constant-time lookup, failure rate limiting."""

from __future__ import annotations

import pytest

from modelport.core.errors import ConfigError, PermissionDenied, Unauthenticated
from modelport.server.auth import FailureLimiter, Gate, Principal, StaticKeys, token_from_headers
from modelport.server.config import ApiKey, ServerConfig
from modelport.server.errors import TooManyFailures

pytestmark = pytest.mark.anyio

ADMIN = "admin-key-0123456789abcdef"
PREDICT = "predict-key-0123456789abcdef"


def _gate(*keys: str, limit: int = 3) -> Gate:
    config = ServerConfig(api_keys=keys)
    return Gate([StaticKeys(config.api_keys)], FailureLimiter(limit, 60.0))


def _bearer(key: str) -> list[tuple[bytes, bytes]]:
    return [(b"authorization", f"Bearer {key}".encode())]


def test_keys_are_hashed_and_never_kept_in_clear() -> None:
    config = ServerConfig(api_keys=[ADMIN, f"predict:{PREDICT}"])
    dumped = config.to_json() + repr(config)
    assert ADMIN not in dumped
    assert PREDICT not in dumped
    assert config.api_keys[0].scopes == frozenset({"predict", "admin"})
    assert config.api_keys[1].scopes == frozenset({"predict"})
    assert ServerConfig.from_json(config.to_json()) == config


def test_short_keys_are_refused_with_a_hint() -> None:
    with pytest.raises(ConfigError, match="too short") as info:
        ApiKey.from_secret("abc")
    assert info.value.hint is not None
    assert "secrets.token_urlsafe" in info.value.hint


def test_token_from_either_header() -> None:
    assert token_from_headers(_bearer("k")) == "k"
    assert token_from_headers([(b"x-api-key", b"k2")]) == "k2"
    assert token_from_headers([(b"authorization", b"Basic abc")]) is None
    assert token_from_headers([]) is None


async def test_without_keys_predict_is_open_and_admin_closed() -> None:
    gate = _gate()
    assert not gate.enabled
    assert (await gate.authorize("predict", [], "c")).label == "anonymous"
    with pytest.raises(PermissionDenied, match="no admin key is configured"):
        await gate.authorize("admin", [], "c")


async def test_scopes_are_enforced() -> None:
    gate = _gate(ADMIN, f"predict:{PREDICT}")
    assert (await gate.authorize("public", [], "c")).label == "anonymous"
    assert "admin" in (await gate.authorize("admin", _bearer(ADMIN), "c")).scopes
    assert (await gate.authorize("predict", [(b"x-api-key", PREDICT.encode())], "c")).label == "key-2"
    with pytest.raises(PermissionDenied, match="lacks the 'admin' scope"):
        await gate.authorize("admin", _bearer(PREDICT), "c")
    with pytest.raises(Unauthenticated, match="No API key"):
        await gate.authorize("predict", [], "c")
    with pytest.raises(Unauthenticated, match="not valid"):
        await gate.authorize("predict", _bearer("wrong-key-0123456789"), "c")


async def test_repeated_failures_are_rate_limited_per_client() -> None:
    gate = _gate(ADMIN, limit=3)
    for _ in range(3):
        with pytest.raises(Unauthenticated):
            await gate.authorize("predict", _bearer("nope"), "10.0.0.1")
    with pytest.raises(TooManyFailures) as info:
        await gate.authorize("predict", _bearer(ADMIN), "10.0.0.1")
    assert info.value.http_status == 429
    assert info.value.retry_after_s >= 1
    assert (await gate.authorize("predict", _bearer(ADMIN), "10.0.0.2")).label == "key-1"


def test_limiter_memory_is_bounded() -> None:
    limiter = FailureLimiter(5, 60.0, max_clients=10)
    for i in range(100):
        limiter.record(f"client-{i}")
    assert len(limiter._failures) == 10


class _RegistryKeys:
    """A stand-in for keys stored in the registry: the Authenticator protocol is all the gate needs."""

    has_keys = True

    def grants(self, scope: str) -> bool:
        return scope == "predict"

    async def authenticate(self, token: str) -> Principal | None:
        return Principal("stored", frozenset({"predict"})) if token == "stored-key" else None


async def test_other_authenticators_plug_in() -> None:
    gate = Gate([StaticKeys(()), _RegistryKeys()], FailureLimiter(3, 60.0))
    assert gate.enabled
    assert (await gate.authorize("predict", _bearer("stored-key"), "c")).label == "stored"
