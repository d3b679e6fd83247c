"""API keys stored in the registry: roles map to scopes, wrong roles are refused on management routes
(403), no key or an unknown or revoked key is refused (401), and the composition root wires it in."""

from __future__ import annotations

import asyncio
import threading
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from modelport.api import serving as serving_api
from modelport.api.serving import build_app, describe_config, registry_has_keys
from modelport.core.errors import ConfigError
from modelport.core.settings import Settings
from modelport.registry import users as users_module
from modelport.registry.registry import Registry
from modelport.registry.users import ROLES, Principal
from modelport.server.app import create_app
from modelport.server.config import ServerConfig
from modelport.server.registry_auth import RegistryKeys, scopes_of
from modelport.server.run import check_bind

from .support import rows, serving, v2_body

ONE = v2_body(rows(1), ("predict",))
INDEX = "/v2/repository/index"
INFER = "/v2/models/iris/infer"


@pytest.fixture
def keys(registry: Registry) -> dict[str, str]:
    """One API key per role (``admin`` bootstrapped first)."""
    issued = {"admin": registry.users.bootstrap_admin("root", actor="tests").token}
    root = registry.authenticate(issued["admin"])
    for role in ROLES:
        if role != "admin":
            registry.users.create_user(f"user-{role.replace('_', '-')}", role, by=root)
            issued[role] = registry.users.create_key(f"user-{role.replace('_', '-')}", by=root).token
    return issued


def _app(registry: Registry, *, ttl_s: float = 10.0, poll_interval_s: float = 2.0) -> tuple[RegistryKeys, Starlette]:
    authenticator = RegistryKeys(registry, ttl_s=ttl_s)
    authenticator.refresh()
    config = ServerConfig(models=("iris@production",), warmup_rows=2, poll_interval_s=poll_interval_s)
    return authenticator, create_app(config, registry=registry, authenticators=(authenticator,))


FAST_POLL_S = 0.05
LONG_TTL_S = 60.0  # far beyond the deadline below: only the revision can clear a cached answer
DEADLINE_S = 2.0


async def _status_becomes(
    client: httpx.AsyncClient, status: int, *, path: str = INFER, headers: dict[str, str] | None = None
) -> float:
    """Repeat one request until it answers ``status``; return how long that took (fails after ``DEADLINE_S``)."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    seen: list[int] = []
    while loop.time() - start < DEADLINE_S:
        answer = await client.post(path, json=ONE if path == INFER else None, headers=headers)
        if answer.status_code == status:
            return loop.time() - start
        seen.append(answer.status_code)
        await asyncio.sleep(0.02)
    raise AssertionError(f"{path} never answered {status} within {DEADLINE_S} s (answers: {sorted(set(seen))})")


@pytest.mark.parametrize(
    ("role", "scopes"),
    [
        ("admin", {"admin", "predict"}),
        ("approver", {"predict"}),
        ("data_scientist", {"predict"}),
        ("viewer", {"predict"}),
    ],
)
def test_roles_map_to_scopes(role: str, scopes: set[str]) -> None:
    assert scopes_of(Principal.of("someone", role)) == scopes


@pytest.mark.anyio
async def test_wrong_roles_get_403_on_admin_routes_and_no_key_gets_401(
    registry: Registry, keys: dict[str, str]
) -> None:
    _, app = _app(registry)
    async with serving(app) as client:
        assert (await client.get("/v2/health/live")).status_code == 200  # health stays public
        none = await client.post(INFER, json=ONE)
        assert none.status_code == 401
        assert "No API key" in none.json()["error"]
        assert (await client.post(INDEX)).status_code == 401
        bad = await client.post(INFER, json=ONE, headers={"Authorization": "Bearer mpk_0123456789abcdef_nope"})
        assert bad.status_code == 401
        for role in ("viewer", "data_scientist", "approver"):
            headers = {"Authorization": f"Bearer {keys[role]}"}
            assert (await client.post(INFER, json=ONE, headers=headers)).status_code == 200, role
            refused = await client.post(INDEX, headers=headers)
            assert refused.status_code == 403, role
            assert "lacks the 'admin' scope" in refused.json()["error"]
            assert keys[role] not in refused.text  # the key is never echoed
        admin = {"X-API-Key": keys["admin"]}
        assert (await client.post(INDEX, headers=admin)).status_code == 200
        assert (await client.post(INFER, json=ONE, headers=admin)).status_code == 200


@pytest.mark.anyio
async def test_a_revoked_key_stops_working_once_its_cached_answer_expires(
    registry: Registry, keys: dict[str, str]
) -> None:
    _, app = _app(registry, ttl_s=0.0)
    headers = {"Authorization": f"Bearer {keys['viewer']}"}
    async with serving(app) as client:
        assert (await client.post(INFER, json=ONE, headers=headers)).status_code == 200
        root = registry.authenticate(keys["admin"])
        key_id = registry.authenticate(keys["viewer"]).key_id
        assert key_id is not None
        registry.users.revoke_key(key_id, by=root)
        assert (await client.post(INFER, json=ONE, headers=headers)).status_code == 401


@pytest.mark.anyio
async def test_a_revoked_key_stops_working_at_the_next_revision_poll_not_the_ttl(
    registry: Registry, keys: dict[str, str]
) -> None:
    _, app = _app(registry, ttl_s=LONG_TTL_S, poll_interval_s=FAST_POLL_S)
    headers = {"Authorization": f"Bearer {keys['viewer']}"}
    async with serving(app) as client:
        assert (await client.post(INFER, json=ONE, headers=headers)).status_code == 200  # now cached as accepted
        root = registry.authenticate(keys["admin"])
        key_id = registry.authenticate(keys["viewer"]).key_id
        assert key_id is not None
        registry.users.revoke_key(key_id, by=root)
        assert await _status_becomes(client, 401, headers=headers) < DEADLINE_S
        other = {"Authorization": f"Bearer {keys['approver']}"}
        assert (await client.post(INFER, json=ONE, headers=other)).status_code == 200  # other keys unaffected


@pytest.mark.anyio
async def test_a_disabled_user_and_a_demoted_admin_lose_access_at_the_next_revision_poll(
    registry: Registry, keys: dict[str, str]
) -> None:
    root = registry.authenticate(keys["admin"])
    registry.users.create_user("ops", "admin", by=root)
    ops = {"Authorization": f"Bearer {registry.users.create_key('ops', by=root).token}"}
    approver = {"Authorization": f"Bearer {keys['approver']}"}
    _, app = _app(registry, ttl_s=LONG_TTL_S, poll_interval_s=FAST_POLL_S)
    async with serving(app) as client:
        assert (await client.post(INFER, json=ONE, headers=approver)).status_code == 200
        assert (await client.post(INDEX, headers=ops)).status_code == 200
        registry.users.disable_user("user-approver", by=root, reason="left")
        assert await _status_becomes(client, 401, headers=approver) < DEADLINE_S
        registry.users.set_role("ops", "viewer", by=root)
        assert await _status_becomes(client, 403, path=INDEX, headers=ops) < DEADLINE_S
        assert (await client.post(INFER, json=ONE, headers=ops)).status_code == 200  # a viewer still predicts


@pytest.mark.anyio
async def test_a_key_refused_before_it_existed_works_at_the_next_revision_poll(
    registry: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = registry.authenticate(registry.users.bootstrap_admin("root", actor="tests").token)
    registry.users.create_user("dana", "viewer", by=root)
    known = SimpleNamespace(token_hex=lambda n: "ab" * n, token_urlsafe=lambda n: "s" * 43)
    monkeypatch.setattr(users_module, "secrets", known)  # the next key's token is known before it exists
    headers = {"Authorization": f"Bearer mpk_{'ab' * users_module.KEY_ID_BYTES}_{'s' * 43}"}
    _, app = _app(registry, ttl_s=LONG_TTL_S, poll_interval_s=FAST_POLL_S)
    async with serving(app) as client:
        assert (await client.post(INFER, json=ONE, headers=headers)).status_code == 401  # cached as refused
        issued = registry.users.create_key("dana", by=root)
        assert headers["Authorization"] == f"Bearer {issued.token}"
        assert await _status_becomes(client, 200, headers=headers) < DEADLINE_S


@pytest.mark.anyio
async def test_bootstrapping_the_first_admin_turns_keys_on_at_the_next_revision_poll(registry: Registry) -> None:
    authenticator, app = _app(registry, ttl_s=LONG_TTL_S, poll_interval_s=FAST_POLL_S)
    async with serving(app) as client:
        assert (await client.post(INFER, json=ONE)).status_code == 200  # open registry
        assert not authenticator.has_keys
        registry.users.bootstrap_admin("root", actor="tests")
        assert await _status_becomes(client, 401) < DEADLINE_S


@pytest.mark.anyio
async def test_an_answer_read_before_a_revision_is_not_cached_after_it(
    registry: Registry, keys: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    authenticator = RegistryKeys(registry, ttl_s=LONG_TTL_S)
    real, read, release = registry.authenticate, threading.Event(), threading.Event()

    def read_then_wait(token: str) -> Principal:
        user = real(token)
        read.set()
        release.wait(5)
        return user

    monkeypatch.setattr(registry, "authenticate", read_then_wait)
    checking = asyncio.get_running_loop().create_task(authenticator.authenticate(keys["viewer"]))
    assert await asyncio.to_thread(read.wait, 5)
    key_id = real(keys["viewer"]).key_id
    assert key_id is not None
    registry.users.revoke_key(key_id, by=real(keys["admin"]))
    await authenticator.on_revision()  # the poller saw the revocation while the check was in flight
    release.set()
    assert await checking is not None  # that request was asked before the revocation
    monkeypatch.setattr(registry, "authenticate", real)
    assert await authenticator.authenticate(keys["viewer"]) is None  # its answer was not kept


@pytest.mark.anyio
async def test_an_open_registry_keeps_predict_open_and_management_closed(registry: Registry) -> None:
    authenticator, app = _app(registry)
    assert not authenticator.has_keys
    assert not authenticator.grants("admin")
    async with serving(app) as client:
        assert (await client.post(INFER, json=ONE)).status_code == 200
        assert (await client.post(INDEX)).status_code == 403


@pytest.mark.anyio
async def test_build_app_accepts_registry_keys(settings: Settings, registry: Registry, keys: dict[str, str]) -> None:
    config = ServerConfig(models=("iris@production",), warmup_rows=2, prediction_log_dir=None)
    app = build_app(config, settings=settings, registry=registry, accelerate=False)
    async with serving(app) as client:
        assert (await client.post(INFER, json=ONE)).status_code == 401
        viewer = {"Authorization": f"Bearer {keys['viewer']}"}
        assert (await client.post(INFER, json=ONE, headers=viewer)).status_code == 200
        assert (await client.post(INDEX, headers=viewer)).status_code == 403
        assert (await client.post(INDEX, headers={"Authorization": f"Bearer {keys['admin']}"})).status_code == 200


def _bind_via_serve(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Call ``serve`` on 0.0.0.0 with uvicorn replaced by the bind check, and return what ``run`` got."""
    seen: dict[str, Any] = {}

    def fake_run(config: ServerConfig, **kwargs: Any) -> None:
        seen.update(kwargs)
        check_bind(config, admin_keys_configured=kwargs.get("admin_keys_configured", False))

    monkeypatch.setattr(serving_api, "run", fake_run)
    serving_api.serve(["iris@production"], settings=settings, accelerate=False, host="0.0.0.0", warmup_rows=2)
    return seen


def test_a_registry_admin_key_allows_a_non_loopback_bind(
    settings: Settings, registry: Registry, keys: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    seen = _bind_via_serve(settings, monkeypatch)
    assert seen["admin_keys_configured"] is True
    assert seen["app"] is not None


def test_an_open_registry_does_not_allow_a_non_loopback_bind(
    settings: Settings, registry: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ConfigError, match="Refusing to listen"):
        _bind_via_serve(settings, monkeypatch)


def test_start_up_summary_names_registry_keys(settings: Settings, registry: Registry) -> None:
    config = ServerConfig(models=("iris@production",))
    assert not registry_has_keys(settings)
    assert describe_config(config, registry_keys=registry_has_keys(settings))["auth"] == "off (loopback only)"
    registry.users.bootstrap_admin("root", actor="tests")
    assert registry_has_keys(settings)
    assert describe_config(config, registry_keys=registry_has_keys(settings))["auth"] == "registry keys"
    with_static = ServerConfig(models=("iris@production",), api_keys=["predict:a-predict-key-that-is-long-enough"])
    assert describe_config(with_static)["auth"] == "api keys"
    assert describe_config(with_static, registry_keys=True)["auth"] == "api keys + registry keys"
