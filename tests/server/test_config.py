"""ServerConfig: defaults from RELIABILITY.md, validation that teaches, JSON round trip, loopback."""

from __future__ import annotations

import pytest

from modelport.core.errors import ConfigError
from modelport.server.config import ServerConfig, is_loopback


def test_defaults_are_the_documented_caps() -> None:
    config = ServerConfig()
    assert config.host == "127.0.0.1"
    assert config.max_body_bytes == 16 * 1024 * 1024
    assert config.max_binary_body_bytes == 64 * 1024 * 1024
    assert config.max_json_depth == 64
    assert config.request_timeout_s == 30.0
    assert config.drain_timeout_s == 30.0
    assert config.load_retries == 3
    assert config.queue_limit == config.max_batch_size * 4
    assert not config.auth_enabled


def test_invalid_values_name_the_field() -> None:
    with pytest.raises(ConfigError, match="max_batch_size"):
        ServerConfig.build(max_batch_size=0)
    with pytest.raises(ConfigError, match="cache_url"):
        ServerConfig.build(cache_url="memcached://x")


def test_json_round_trip_keeps_secrets_for_workers_only() -> None:
    config = ServerConfig(cache_url="redis://user:s3cret@localhost:6379/0", models=("a", "./b"))
    assert "s3cret" not in repr(config)
    assert "s3cret" not in config.model_dump_json()
    again = ServerConfig.from_json(config.to_json())
    assert again == config
    assert again.cache_url is not None
    assert again.cache_url.get_secret_value().endswith("s3cret@localhost:6379/0")


def test_from_json_refuses_garbage() -> None:
    with pytest.raises(ConfigError, match="serialised server config"):
        ServerConfig.from_json('{"port": "many"}')


@pytest.mark.parametrize(("host", "loopback"), [("127.0.0.1", True), ("localhost", True), ("::1", True),
                                               ("[::1]", True), ("0.0.0.0", False), ("10.1.2.3", False),
                                               ("example.com", False)])  # fmt: skip
def test_loopback_detection(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_cache_is_per_model_when_listed() -> None:
    assert not ServerConfig().cache_enabled_for("a")
    assert ServerConfig(cache_url="memory").cache_enabled_for("a")
    config = ServerConfig(cache_url="memory", cache_models=("a",))
    assert config.cache_enabled_for("a")
    assert not config.cache_enabled_for("b")
