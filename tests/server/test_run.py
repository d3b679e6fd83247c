"""Running under uvicorn: the bind rule, the worker spec round trip, the worker factory, logging."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from modelport.core.errors import ConfigError
from modelport.server.config import ServerConfig
from modelport.server.routes import Guarded
from modelport.server.run import (
    WORKER_ENV,
    RegistryLocation,
    WorkerSpec,
    check_bind,
    log_config,
    run,
    uvicorn_options,
    worker_app,
    worker_spec_from_environment,
)

ADMIN = "an-admin-key-that-is-long-enough"


@pytest.mark.parametrize("host", ["0.0.0.0", "10.0.0.5", "::", "example.com"])
def test_non_loopback_without_an_admin_key_refuses_to_start(host: str) -> None:
    with pytest.raises(ConfigError, match="Refusing to listen") as info:
        check_bind(ServerConfig(host=host))
    assert info.value.hint is not None
    with pytest.raises(ConfigError, match="Refusing to listen"):
        check_bind(ServerConfig(host=host, api_keys=[f"predict:{ADMIN}"]))
    with pytest.raises(ConfigError, match="Refusing to listen"):
        run(ServerConfig(host=host, models=("./x",)))


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1"])
def test_loopback_needs_no_key(host: str) -> None:
    check_bind(ServerConfig(host=host))


def test_an_admin_key_allows_any_address() -> None:
    check_bind(ServerConfig(host="0.0.0.0", api_keys=[ADMIN]))


def test_an_admin_key_stored_elsewhere_allows_any_address() -> None:
    check_bind(ServerConfig(host="0.0.0.0"), admin_keys_configured=True)
    with pytest.raises(ConfigError, match="Refusing to listen"):
        check_bind(ServerConfig(host="0.0.0.0"), admin_keys_configured=False)
    with pytest.raises(ConfigError, match="Refusing to listen"):
        run(ServerConfig(host="0.0.0.0", models=("./x",)), admin_keys_configured=False)


def test_one_worker_needs_the_app() -> None:
    with pytest.raises(ConfigError, match="needs the app"):
        run(ServerConfig(models=("./x",)))


def test_worker_spec_round_trips_with_its_secrets() -> None:
    spec = WorkerSpec(
        config=ServerConfig(models=("iris@production",), api_keys=[ADMIN], cache_url="redis://:pw@localhost/0"),
        registry=RegistryLocation(db_url="postgresql://u:pw@db/x", artifacts_url="/a", actor="svc", home=Path("/h")),
    )
    text = spec.to_json()
    assert ADMIN not in text
    back = worker_spec_from_environment({WORKER_ENV: text})
    assert back == spec
    assert back.registry is not None
    assert back.registry.db_url.get_secret_value() == "postgresql://u:pw@db/x"
    assert "pw" not in repr(back)


def test_worker_spec_missing_or_invalid() -> None:
    with pytest.raises(ConfigError, match="not set"):
        worker_spec_from_environment({})
    with pytest.raises(ConfigError, match="not a valid worker spec"):
        worker_spec_from_environment({WORKER_ENV: "{"})


def test_worker_factory_builds_the_app(monkeypatch: pytest.MonkeyPatch, iris_bundles: dict[int, Path]) -> None:
    config = ServerConfig(models=(str(iris_bundles[1]),))
    monkeypatch.setenv(WORKER_ENV, WorkerSpec(config=config).to_json())
    app = worker_app()
    assert app.state.modelport.config == config
    assert all(isinstance(route.endpoint, Guarded) for route in app.routes)


def test_uvicorn_options_follow_the_config() -> None:
    options = uvicorn_options(ServerConfig(port=9000, drain_timeout_s=12), "warning")
    assert options["port"] == 9000
    assert options["timeout_graceful_shutdown"] == 12
    assert options["access_log"] is False
    assert log_config("debug")["loggers"]["modelport"]["level"] == "DEBUG"


def _client_seen(config: ServerConfig, headers: dict[str, str]) -> str:
    """The client address an app sees behind uvicorn started with ``config``'s options."""

    async def echo(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = scope["client"][0].encode()
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"%d" % len(body))]})
        await send({"type": "http.response.body", "body": body})

    options = {**uvicorn_options(config, "warning"), "port": 0, "lifespan": "off"}
    del options["log_config"]
    server = uvicorn.Server(uvicorn.Config(echo, **options))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.02)
        port = server.servers[0].sockets[0].getsockname()[1]
        return httpx.get(f"http://127.0.0.1:{port}/", headers=headers, timeout=10).text
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def test_forwarded_headers_are_believed_only_from_the_configured_proxies() -> None:
    spoofed = {"X-Forwarded-For": "203.0.113.7"}
    options = uvicorn_options(ServerConfig(), "warning")
    assert options["proxy_headers"] is False
    assert _client_seen(ServerConfig(), spoofed) == "127.0.0.1"  # a caller cannot pick its address
    behind_proxy = ServerConfig(forwarded_allow_ips=("127.0.0.1",))
    assert uvicorn_options(behind_proxy, "warning")["forwarded_allow_ips"] == ["127.0.0.1"]
    assert _client_seen(behind_proxy, spoofed) == "203.0.113.7"
    assert _client_seen(ServerConfig(forwarded_allow_ips=("10.9.9.9",)), spoofed) == "127.0.0.1"


@pytest.mark.parametrize(
    ("entries", "named"),
    [(("127.0.0.l",), "'127.0.0.l'"), (("10.0.0.0/33",), "'10.0.0.0/33'"), (("*", "10.0.0.1"), "'*' trusts")],
)
def test_a_mistyped_trusted_proxy_is_refused_naming_it(entries: tuple[str, ...], named: str) -> None:
    with pytest.raises(ConfigError, match="forwarded_allow_ips") as info:
        ServerConfig.build(forwarded_allow_ips=entries)
    assert named in info.value.message
    assert ServerConfig.build(forwarded_allow_ips=("*",)).forwarded_allow_ips == ("*",)
    assert ServerConfig.build(forwarded_allow_ips=("::1", "10.0.0.0/8")).forwarded_allow_ips == ("::1", "10.0.0.0/8")
