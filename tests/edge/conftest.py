"""Small models and data for the edge tests, and a clean virtualenv holding only onnxruntime and numpy."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from modelport.bundle.io import load_bundle, save_bundle
from modelport.bundle.loaded import LoadedBundle

MakeBundle = Callable[..., LoadedBundle]


@pytest.fixture(autouse=True, scope="session")
def _one_blas_thread() -> Iterator[None]:
    """One BLAS thread: on a shared 2-core machine, threaded BLAS makes tiny MLP fits 7x slower."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        yield


@pytest.fixture
def make_bundle(tmp_path: Path) -> MakeBundle:
    """``make_bundle(model, sample, name="...")``: save and load a bundle in ``tmp_path``."""
    counter = iter(range(1_000))

    def make(model: Any, sample: Any, *, name: str = "model", reference: Any = None) -> LoadedBundle:
        path = tmp_path / f"bundle-{next(counter)}"
        save_bundle(model, path, name=name, sample_input=sample, reference_data=reference)
        return load_bundle(path)

    return make


@pytest.fixture
def customers() -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """300 rows: numeric, integer, string and missing values; a string label and a numeric target."""
    rng = np.random.default_rng(3)
    n = 300
    frame = pd.DataFrame(
        {
            "age": rng.normal(40, 10, n).round(1),
            "plan": rng.choice(["basic", "pro", "team"], n),
            "visits": rng.integers(0, 6, n),
            "spend": rng.normal(100, 30, n),
        }
    )
    frame.loc[::23, "spend"] = np.nan
    label = np.where((frame["age"] > 40) ^ (frame["plan"] == "pro"), "churn", "stay")
    target = frame["age"] * 2.0 + frame["visits"] + rng.normal(0, 1, n)
    return frame, label, target.to_numpy()


@pytest.fixture
def numeric() -> tuple[pd.DataFrame, np.ndarray]:
    """400 rows of 8 numeric columns and a 3-class integer label."""
    from sklearn.datasets import make_classification

    x, y = make_classification(400, 8, n_informative=5, n_classes=3, random_state=0)
    return pd.DataFrame(x, columns=[f"f{i}" for i in range(8)]), y


@pytest.fixture(scope="session")
def clean_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The python of a fresh virtualenv holding only onnxruntime and numpy (made once per session)."""
    root = tmp_path_factory.mktemp("clean-venv")
    subprocess.run([sys.executable, "-m", "venv", str(root)], check=True, capture_output=True, timeout=120)
    python = root / "bin" / "python"
    pip = subprocess.run(
        [str(python), "-m", "pip", "install", "--disable-pip-version-check", "-q", "onnxruntime", "numpy"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert pip.returncode == 0, f"pip could not install onnxruntime and numpy into a clean venv:\n{pip.stderr[-2000:]}"
    return python
