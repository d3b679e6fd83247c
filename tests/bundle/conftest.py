"""Small data sets for the bundle tests: iris arrays and a mixed-type customer table."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest


@pytest.fixture
def iris() -> tuple[np.ndarray, np.ndarray]:
    """Iris features (150 x 4 float64) and integer labels."""
    from sklearn.datasets import load_iris

    x, y = load_iris(return_X_y=True)
    return x, y


@pytest.fixture
def customers() -> tuple[pd.DataFrame, np.ndarray]:
    """120 rows of every column type, with a string target ('stay'/'churn')."""
    rng = np.random.default_rng(7)
    n = 120
    frame = pd.DataFrame(
        {
            "age": rng.integers(18, 80, n),
            "income": rng.normal(50_000, 12_000, n),
            "plan": pd.Series(rng.choice(["basic", "pro", "team"], n), dtype="str"),
            "region": pd.Series(rng.choice(["north", "south"], n), dtype=object),
            "channel": pd.Categorical(rng.choice(["web", "shop"], n)),
            "active": rng.random(n) > 0.3,
        }
    )
    frame.loc[::17, "income"] = np.nan
    score = frame["age"] / 80 + (frame["plan"] == "pro") - (frame["active"]) * 0.5
    target = np.where(score + rng.normal(0, 0.3, n) > 0.6, "churn", "stay")
    return frame, target
