"""Governance fixtures: bundles built once per session, and a fresh registry with users per test."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from modelport.core.settings import Settings
from modelport.registry.registry import Registry

from .support import FEATURES, WIDE, People, make_people, save_iris, save_ridge


class LazyBundles(dict[str, Path]):
    """Bundles by key, each saved the first time a test asks for it (saving costs most of a test's time)."""

    def __init__(self, root: Path) -> None:
        super().__init__()
        self._root = root
        self._makers: dict[str, Callable[[Path], Path]] = {
            "good": lambda p: save_iris(p, c=1.0),
            "good2": lambda p: save_iris(p, c=2.0),
            "weak": lambda p: save_iris(p, c=0.001),
            "narrow": lambda p: save_iris(p, features=FEATURES[:3]),
            "wide": lambda p: save_iris(p, features=WIDE),
            "ridge": lambda p: save_ridge(p, alpha=0.01),
            "ridge_weak": lambda p: save_ridge(p, alpha=1000.0),
        }

    def __missing__(self, key: str) -> Path:
        path = self._makers[key](self._root / key)
        self[key] = path
        return path


@pytest.fixture(scope="session")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Iris bundles ``good`` (C=1), ``good2`` (C=2), ``weak`` (C=0.001), ``narrow`` (3 features: compatible),
    ``wide`` (needs the new column ``petal_area``); diabetes ridge bundles ``ridge`` and ``ridge_weak``."""
    return LazyBundles(tmp_path_factory.mktemp("governance-bundles"))


@pytest.fixture
def registry(settings: Settings) -> Iterator[Registry]:
    """A fresh registry in a temporary MODELPORT_HOME."""
    reg = Registry(settings)
    yield reg
    reg.close()


@pytest.fixture
def people(registry: Registry) -> People:
    """An admin, two data scientists, two approvers and a viewer, authenticated by their keys."""
    return make_people(registry)
