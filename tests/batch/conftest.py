"""Fixtures for the batch tests: a tiny classifier bundle, its Predictor, a run store, input data."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from modelport.bundle.io import load_bundle, save_bundle
from modelport.core.refs import ModelRef
from modelport.registry import db, schema
from modelport.registry.runs import RunStore
from modelport.runtime.predictor import Predictor

FEATURES = ["a", "b", "c"]


def frame(n: int, *, seed: int = 0, start: int = 0) -> pd.DataFrame:
    """``n`` rows: an integer ``id`` key and three float features."""
    rng = np.random.default_rng(seed)
    data = pd.DataFrame(rng.normal(size=(n, 3)), columns=FEATURES)
    data.insert(0, "id", np.arange(start, start + n, dtype=np.int64))
    return data


@pytest.fixture(scope="session")
def bundle_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A saved logistic-regression bundle named ``lr`` (features a, b, c; classes 0/1)."""
    from sklearn.linear_model import LogisticRegression

    train = frame(300, seed=1)
    model = LogisticRegression().fit(train[FEATURES], (train["a"] + train["b"] > 0).astype(int))
    path = tmp_path_factory.mktemp("bundles") / "lr"
    save_bundle(model, path, name="lr", sample_input=train[FEATURES].head(50))
    return path


@pytest.fixture(scope="session")
def predictor(bundle_dir: Path) -> Predictor:
    """The Predictor of :func:`bundle_dir`."""
    return Predictor(load_bundle(bundle_dir))


@pytest.fixture
def versioned(predictor: Predictor) -> Callable[[int], Predictor]:
    """The same model presented as registry version ``v`` of ``lr``."""

    def make(version: int) -> Predictor:
        bundle = predictor.bundle
        return Predictor(replace(bundle, manifest=bundle.manifest.with_version("lr", version)))

    return make


@pytest.fixture
def load_model(predictor: Predictor) -> Callable[[ModelRef], Predictor]:
    """A model loader that always returns :func:`predictor`."""
    return lambda ref: predictor


@pytest.fixture
def registry_url(tmp_path: Path) -> str:
    """URL of a fresh, migrated SQLite registry database."""
    url = f"sqlite:///{tmp_path / 'registry.db'}"
    engine = db.create_engine(url)
    schema.upgrade(engine, url)
    engine.dispose()
    return url


@pytest.fixture
def store(registry_url: str) -> Iterator[RunStore]:
    """A run store on the fresh registry database."""
    engine = db.create_engine(registry_url)
    yield RunStore(engine, registry_url)
    engine.dispose()
