"""API keys stored in the registry: roles map to scopes, wrong roles are refused on management routes
(403), no key or an unknown or revoked key is refused (401), and the composition root wires it in."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.applications import Starlette

from modelport.api import serving as serving_api
from modelport.api.serving import build_app, describe_config, registry_has_keys
from modelport.core.errors import ConfigError
from modelport.core.settings import Settings
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


def _app(registry: Registry, *, ttl_s: float = 10.0) -> tuple[RegistryKeys, Starlette]:
    authenticator = RegistryKeys(registry, ttl_s=ttl_s)
    authenticator.refresh()
    config = ServerConfig(models=("iris@production",), warmup_rows=2)
    return authenticator, create_app(config, registry=registry, authenticators=(authenticator,))


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
