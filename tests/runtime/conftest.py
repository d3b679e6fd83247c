"""Fixtures for runtime tests: a tiny iris classifier trained once per session."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest


@pytest.fixture(scope="session")
def iris() -> tuple[pd.DataFrame, np.ndarray]:
    """Iris features (a DataFrame) and string labels."""
    from sklearn.datasets import load_iris

    data = load_iris(as_frame=True)
    labels = np.asarray(data.target_names)[data.target.to_numpy()]
    return data.data, labels


@pytest.fixture(scope="session")
def iris_model(iris: tuple[pd.DataFrame, np.ndarray]) -> Any:
    from sklearn.linear_model import LogisticRegression

    frame, labels = iris
    return LogisticRegression(max_iter=300).fit(frame, labels)
