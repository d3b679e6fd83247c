"""Server test fixtures: the asyncio backend, tiny iris bundles, and a registry holding them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from modelport.core.settings import Settings
from modelport.registry.registry import Registry

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


@pytest.fixture
def registry(settings: Settings, iris_bundles: dict[int, Path]) -> Iterator[Registry]:
    """A registry with iris versions 1 and 2; ``production`` points at 1."""
    reg = Registry(settings)
    for version in (1, 2):
        reg.register(iris_bundles[version], name="iris")
    reg.set_alias("iris", "production", 1)
    yield reg
    reg.close()
