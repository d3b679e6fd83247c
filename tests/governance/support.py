"""Helpers for governance tests: tiny real models saved as bundles, a holdout, and users with each role.

Models are logistic regressions on sklearn's bundled iris data (their accuracy falls as ``c``
shrinks: about 0.97 at 1.0, 0.75 at 0.001) and a ridge regression on the diabetes data.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from modelport.bundle.hashing import sha256_file
from modelport.bundle.io import save_bundle
from modelport.bundle.manifest import MANIFEST_FILE, ArtifactEntry, read_manifest
from modelport.registry.registry import Registry
from modelport.registry.users import Principal

FEATURES = ("sepal_length", "sepal_width", "petal_length", "petal_width")
WIDE = (*FEATURES, "petal_area")


def iris_frame() -> pd.DataFrame:
    """The iris features (named columns), a derived ``petal_area`` and a ``target`` column."""
    from sklearn.datasets import load_iris

    data = load_iris()
    frame = pd.DataFrame(data.data, columns=list(FEATURES))
    frame["petal_area"] = frame["petal_length"] * frame["petal_width"]
    frame["target"] = data.target
    return frame


def save_iris(
    path: Path,
    *,
    c: float = 1.0,
    name: str = "iris",
    features: tuple[str, ...] = FEATURES,
    tags: dict[str, str] | None = None,
) -> Path:
    """Fit a logistic regression on ``features`` of iris with regularisation ``c`` and save it."""
    from sklearn.linear_model import LogisticRegression

    frame = iris_frame()
    x = frame[list(features)]
    model = LogisticRegression(C=c, max_iter=500).fit(x, frame["target"])
    save_bundle(model, path, name=name, sample_input=x.iloc[::5], tags=tags)
    return path


def diabetes_frame() -> pd.DataFrame:
    """The diabetes features and a ``target`` column."""
    from sklearn.datasets import load_diabetes

    data = load_diabetes(as_frame=True)
    frame = data.data.copy()
    frame["target"] = data.target
    return frame


def save_ridge(path: Path, *, alpha: float = 1.0, name: str = "diabetes") -> Path:
    """Fit a ridge regression on the diabetes data and save it."""
    from sklearn.linear_model import Ridge

    frame = diabetes_frame()
    x = frame.drop(columns=["target"])
    save_bundle(Ridge(alpha=alpha).fit(x, frame["target"]), path, name=name, sample_input=x.iloc[:30])
    return path


def add_checks(bundle: Path, source: str) -> Path:
    """Ship ``source`` as the bundle's ``artifacts/checks.py``, listed and hashed in its manifest."""
    target = bundle / "artifacts" / "checks.py"
    target.write_text(source, encoding="utf-8")
    manifest = read_manifest(bundle)
    entry = ArtifactEntry(path="artifacts/checks.py", sha256=sha256_file(target), size=target.stat().st_size)
    updated = manifest.model_copy(update={"artifacts": (*manifest.artifacts, entry)})
    (bundle / MANIFEST_FILE).write_text(updated.to_yaml(), encoding="utf-8")
    return bundle


@dataclass(frozen=True)
class People:
    """One principal per role, plus a second data scientist and a second approver."""

    admin: Principal
    ds: Principal
    ds2: Principal
    approver: Principal
    approver2: Principal
    viewer: Principal
    tokens: dict[str, str]


def make_people(registry: Registry) -> People:
    """Bootstrap an admin and create the other users, each with a key; return them authenticated."""
    tokens = {"root": registry.users.bootstrap_admin("root", actor="tester").token}
    admin = registry.authenticate(tokens["root"])
    for name, role in (
        ("dana", "data_scientist"),
        ("dave", "data_scientist"),
        ("alex", "approver"),
        ("ann", "approver"),
        ("vic", "viewer"),
    ):
        registry.users.create_user(name, role, by=admin)
        tokens[name] = registry.users.create_key(name, by=admin).token
    who = {name: registry.authenticate(token) for name, token in tokens.items()}
    return People(admin, who["dana"], who["dave"], who["alex"], who["ann"], who["vic"], tokens)
