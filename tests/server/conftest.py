"""Server test fixtures: the asyncio backend, tiny iris bundles, a registry holding them, and a real server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from modelport.api.background import background_server
from modelport.bundle.io import load_bundle
from modelport.core.settings import Settings
from modelport.registry.registry import Registry
from modelport.runtime.predictor import Predictor
from modelport.server.app import create_app
from modelport.server.config import ServerConfig

from .support import save_iris


@pytest.fixture
def anyio_backend() -> str:
    """Run async tests on asyncio (the server's loop)."""
    return "asyncio"


@pytest.fixture(scope="session")
def iris_bundles(tmp_path_factory: pytest.TempPathFactory) -> dict[int, Path]:
    """Two iris bundles whose predictions differ on some rows: strong (1) and heavily regularised (2)."""
    root = tmp_path_factory.mktemp("bundles")
    return {1: save_iris(root / "v1", c=1.0), 2: save_iris(root / "v2", c=0.01)}


@pytest.fixture(scope="session")
def iris_predictor(iris_bundles: dict[int, Path]) -> Predictor:
    """Iris bundle 1 loaded in process: the reference answers for what the server returns."""
    return Predictor(load_bundle(iris_bundles[1]))


@pytest.fixture
def registry(settings: Settings, iris_bundles: dict[int, Path]) -> Iterator[Registry]:
    """A registry with iris versions 1 and 2; ``production`` points at 1."""
    reg = Registry(settings)
    for version in (1, 2):
        reg.register(iris_bundles[version], name="iris")
    reg.set_alias("iris", "production", 1)
    yield reg
    reg.close()


@pytest.fixture(scope="module")
def iris_url(iris_bundles: dict[int, Path]) -> Iterator[str]:
    """Base URL of a real server (uvicorn on a free loopback port) serving iris bundle 1 as ``iris``.

    For the tests that drive the server with third-party protocol clients over a real socket.
    """
    config = ServerConfig(models=(str(iris_bundles[1]),), poll_interval_s=0, access_log=False)
    with background_server(create_app(config, registry=None)) as url:
        yield url
