"""Browser sign-in for the dashboard when API keys are on: a login form sets an HttpOnly cookie that
the dashboard's GET/HEAD requests accept; every other route and method ignores it; failures are
counted and rate-limited like header keys; a revoked registry key in the cookie stops working."""

from __future__ import annotations

import httpx
import pytest
from starlette.applications import Starlette

from modelport.api.serving import build_app
from modelport.core.settings import Settings
from modelport.registry.registry import Registry
from modelport.server.config import ServerConfig
from modelport.server.registry_auth import RegistryKeys

from .support import rows, serving, v2_body

pytestmark = pytest.mark.anyio

KEY = "dashboard-key-0123456789abcdef"
WRONG = "wrong-key-0123456789abcdef"
HTML = {"Accept": "text/html,application/xhtml+xml"}
ONE = v2_body(rows(1), ("predict",))


def _app(settings: Settings, registry: Registry, *, keys: tuple[str, ...] = (KEY,), **options: object) -> Starlette:
    config = ServerConfig(models=("iris@production",), warmup_rows=2, prediction_log_dir=None, api_keys=keys, **options)
    return build_app(config, settings=settings, registry=registry, accelerate=False)


def _cookie(key: str) -> dict[str, str]:
    return {"Cookie": f"modelport_key={key}"}


async def _login(client: httpx.AsyncClient, key: str, **headers: str) -> httpx.Response:
    answer = await client.post("/dashboard/login", data={"key": key}, headers=headers)
    client.cookies.clear()  # the tests send the cookie explicitly
    return answer


async def test_a_browser_is_sent_to_the_login_page_and_api_clients_get_json_401(
    settings: Settings, registry: Registry
) -> None:
    async with serving(_app(settings, registry)) as client:
        page = await client.get("/dashboard/", headers=HTML)
        assert page.status_code == 303
        assert page.headers["location"] == "/dashboard/login"
        api = await client.get("/dashboard/api/models")
        assert api.status_code == 401
        assert api.json()["type"] == "Unauthenticated"
        form = await client.get("/dashboard/login", headers=HTML)
        assert form.status_code == 200
        assert '<form method="post" action="/dashboard/login">' in form.text
        assert "form-action 'self'" in form.headers["content-security-policy"]
        assert "http://" not in form.text
        assert "https://" not in form.text


async def test_signing_in_sets_a_strict_httponly_cookie_the_dashboard_accepts(
    settings: Settings, registry: Registry
) -> None:
    async with serving(_app(settings, registry)) as client:
        wrong = await _login(client, WRONG)
        assert wrong.status_code == 401
        assert "set-cookie" not in wrong.headers
        assert "not valid" in wrong.text
        assert WRONG not in wrong.text  # never echoed
        assert '<form method="post"' in wrong.text

        right = await _login(client, KEY)
        assert right.status_code == 303
        assert right.headers["location"] == "/dashboard/"
        cookie = right.headers["set-cookie"]
        assert cookie.startswith(f"modelport_key={KEY};")
        for attribute in ("HttpOnly", "SameSite=Strict", "Path=/dashboard", "Max-Age=43200"):
            assert attribute in cookie
        assert "Secure" not in cookie  # plain http here

        page = await client.get("/dashboard/", headers={**HTML, **_cookie(KEY)})
        assert page.status_code == 200
        assert 'data-base="/dashboard/"' in page.text
        models = await client.get("/dashboard/api/models", headers=_cookie(KEY))
        assert models.status_code == 200
        assert [m["name"] for m in models.json()["models"]] == ["iris"]
        assert (await client.head("/dashboard/", headers=_cookie(KEY))).status_code == 200


async def test_the_cookie_is_secure_over_https(settings: Settings, registry: Registry) -> None:
    app = _app(settings, registry)
    async with serving(app):
        transport = httpx.ASGITransport(app=app, client=("10.1.1.1", 5000))
        async with httpx.AsyncClient(transport=transport, base_url="https://test") as client:
            answer = await client.post("/dashboard/login", data={"key": KEY})
    assert answer.status_code == 303
    assert "; Secure" in answer.headers["set-cookie"]


async def test_the_cookie_authenticates_nothing_but_dashboard_reads(settings: Settings, registry: Registry) -> None:
    async with serving(_app(settings, registry)) as client:
        cookie = _cookie(KEY)
        assert (await client.get("/dashboard/api/models", headers=cookie)).status_code == 200
        # not a read: a POST under the dashboard needs a header key even with the cookie
        post = await client.post("/dashboard/api/models", headers=cookie)
        assert post.status_code == 401
        # other routes ignore the cookie entirely
        assert (await client.post("/v2/models/iris/infer", json=ONE, headers=cookie)).status_code == 401
        assert (await client.get("/metrics", headers=cookie)).status_code == 401
        assert (await client.get("/v2", headers={**HTML, **cookie})).status_code == 401
        assert (await client.post("/v2/models/iris/feedback", json={}, headers=cookie)).status_code == 401
        # a header key still works everywhere
        assert (await client.post("/v2/models/iris/infer", json=ONE, headers={"X-API-Key": KEY})).status_code == 200
        assert (await client.get("/dashboard/api/models", headers={"X-API-Key": KEY})).status_code == 200


async def test_a_wrong_cookie_is_refused_and_logout_clears_the_cookie(settings: Settings, registry: Registry) -> None:
    async with serving(_app(settings, registry)) as client:
        stale = await client.get("/dashboard/", headers={**HTML, **_cookie(WRONG)})
        assert stale.status_code == 303
        assert stale.headers["location"] == "/dashboard/login"
        assert (await client.get("/dashboard/api/models", headers=_cookie(WRONG))).status_code == 401

        out = await client.post("/dashboard/logout", headers=_cookie(KEY))
        client.cookies.clear()
        assert out.status_code == 303
        assert out.headers["location"] == "/dashboard/login"
        cleared = out.headers["set-cookie"]
        assert cleared.startswith("modelport_key=;")
        assert "Max-Age=0" in cleared
        assert "Path=/dashboard" in cleared
        assert (await client.get("/dashboard/logout")).status_code == 405


async def test_repeated_wrong_keys_are_counted_and_rate_limited(settings: Settings, registry: Registry) -> None:
    app = _app(settings, registry, auth_failure_limit=3)
    async with serving(app) as client:
        for _ in range(3):
            assert (await _login(client, WRONG)).status_code == 401
        limited = await _login(client, KEY)  # even the right key waits out the window
        assert limited.status_code == 429
        assert int(limited.headers["retry-after"]) >= 1
        assert "set-cookie" not in limited.headers
        assert (await client.get("/dashboard/api/models", headers=_cookie(KEY))).status_code == 429
        metrics = await client.get("/metrics", headers={"X-API-Key": KEY})
    assert metrics.status_code == 429  # the same client, still limited
    failures = app.state.modelport.metrics.registry.get_sample_value("modelport_auth_failures_total")
    assert failures == 3  # the three wrong keys; 429s are not failures


async def test_the_login_form_is_size_capped(settings: Settings, registry: Registry) -> None:
    async with serving(_app(settings, registry)) as client:
        huge = await client.post("/dashboard/login", data={"key": "k" * 10_000})
        assert huge.status_code == 413
        assert "set-cookie" not in huge.headers
        json_body = await client.post("/dashboard/login", json={"key": KEY})
        assert json_body.status_code == 415


async def test_a_revoked_registry_key_in_the_cookie_stops_working(settings: Settings, registry: Registry) -> None:
    token = registry.users.bootstrap_admin("root", actor="tests").token
    root = registry.authenticate(token)
    registry.users.create_user("viewer-one", "viewer", by=root)
    viewer = registry.users.create_key("viewer-one", by=root).token
    keys = RegistryKeys(registry, ttl_s=0.0)
    keys.refresh()
    config = ServerConfig(models=("iris@production",), warmup_rows=2, prediction_log_dir=None)
    app = build_app(config, settings=settings, registry=registry, accelerate=False, keys=keys)
    async with serving(app) as client:
        signed_in = await _login(client, viewer)
        assert signed_in.status_code == 303
        assert (await client.get("/dashboard/api/models", headers=_cookie(viewer))).status_code == 200
        key_id = registry.authenticate(viewer).key_id
        assert key_id is not None
        registry.users.revoke_key(key_id, by=root)
        assert (await client.get("/dashboard/api/models", headers=_cookie(viewer))).status_code == 401
        assert (await client.get("/dashboard/", headers={**HTML, **_cookie(viewer)})).status_code == 303


async def test_without_keys_the_dashboard_needs_no_sign_in(settings: Settings, registry: Registry) -> None:
    async with serving(_app(settings, registry, keys=())) as client:
        assert (await client.get("/dashboard/", headers=HTML)).status_code == 200
        assert (await client.get("/dashboard/api/models")).status_code == 200
        assert (await client.get("/dashboard/login", headers=HTML)).status_code == 200
        answer = await _login(client, "anything-at-all")
        assert answer.status_code == 303
        assert "set-cookie" not in answer.headers
