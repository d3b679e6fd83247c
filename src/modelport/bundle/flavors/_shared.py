"""Small pieces several flavors share: lazy framework imports, pins, class lookups and input checks.

Each flavor module imports its framework only when called and describes the model by the class
names in its hierarchy (so detection never imports the framework). The helpers here do those
lookups, turn numpy values into JSON-ready lists for the manifest, pin requirements, and check
the DataFrame columns and recorded input format of the tree-model flavors (XGBoost, LightGBM).
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from types import ModuleType
from typing import Any

import numpy as np
import pandas as pd

from modelport.bundle.flavors.base import InputFormat
from modelport.core.errors import IntegrityError, MissingDependency, Unsupported, ValidationError


def import_framework(module: str, extra: str) -> ModuleType:
    """Import ``module``, or raise :class:`MissingDependency` naming the extra that installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependency.for_extra(module, extra) from exc


def pin(package: str, version: str) -> str:
    """A ``package==version`` requirement, without a local version label (``2.1.0+cpu`` → ``2.1.0``)."""
    return f"{package}=={version.split('+')[0]}"


def jsonable(values: Any) -> list[Any]:
    """``values`` as a list of plain Python scalars (numpy scalars unwrapped) for the manifest."""
    return [v.item() if isinstance(v, np.generic) else v for v in np.asarray(values).tolist()]


def from_package(model: object, package: str) -> bool:
    """Whether any class in ``model``'s hierarchy comes from the top-level ``package`` (no import)."""
    return any(cls.__module__.split(".")[0] == package for cls in type(model).__mro__)


def estimator_name(model: object, package: str, allowed: Sequence[str], framework: str) -> str:
    """The first class of ``package`` among ``allowed`` that ``model`` is (or derives from).

    Raises:
        Unsupported: ``model`` is none of them (``framework`` names the library in the message).
    """
    for cls in type(model).__mro__:
        if cls.__module__.split(".")[0] == package and cls.__name__ in allowed:
            return cls.__name__
    raise Unsupported(
        f"{framework} model of type {type(model).__qualname__!r} is not supported.",
        hint=f"Save one of {', '.join(allowed)}.",
    )


def select_columns(data: pd.DataFrame, feature_names: Sequence[str], framework: str) -> pd.DataFrame:
    """The training columns of ``data``, in training order.

    Raises:
        ValidationError: A training column is missing (``framework`` names the library).
    """
    missing = [c for c in feature_names if c not in data.columns]
    if missing:
        raise ValidationError(
            f"Missing input column(s) {missing} for this {framework} model.",
            hint=f"Provide the columns the model was trained on: {list(feature_names)}.",
        )
    return data[list(feature_names)]


def recorded_input_format(options: Mapping[str, Any], framework: str) -> InputFormat:
    """The ``frame``/``array`` input format recorded in a tree model's options (``array`` if absent).

    Raises:
        IntegrityError: The bundle records anything else.
    """
    input_format = options.get("input_format", "array")
    if input_format == "frame":
        return "frame"
    if input_format == "array":
        return "array"
    raise IntegrityError(
        f"The bundle records an invalid {framework} input format {input_format!r}.",
        hint="Expected 'frame' or 'array'; re-save the model.",
    )
