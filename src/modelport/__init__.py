"""modelport: take a trained model to production and keep it healthy there.

The public API lives here; everything else is internal. Importing modelport does no work: the
names below are resolved on first use, so ``import modelport`` stays instant and loads no ML
framework.

Example:
    >>> import modelport
    >>> mv = modelport.save_model(clf, "churn", sample_input=X.head(100))  # doctest: +SKIP
    >>> modelport.load_model("churn:1").predict(X.head(3))  # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from modelport.api import load_model, save_bundle, save_model
    from modelport.api.exporting import export
    from modelport.api.scoring import score
    from modelport.api.serving import serve
    from modelport.core.errors import ModelportError
    from modelport.core.refs import ModelRef
    from modelport.core.settings import Settings
    from modelport.registry.records import ModelVersion
    from modelport.registry.registry import Registry
    from modelport.runtime.predictor import Predictor

_EXPORTS: dict[str, str] = {
    "ModelRef": "modelport.core.refs",
    "ModelVersion": "modelport.registry.records",
    "ModelportError": "modelport.core.errors",
    "Predictor": "modelport.runtime.predictor",
    "Registry": "modelport.registry.registry",
    "Settings": "modelport.core.settings",
    "export": "modelport.api.exporting",
    "load_model": "modelport.api",
    "save_bundle": "modelport.api",
    "save_model": "modelport.api",
    "score": "modelport.api.scoring",
    "serve": "modelport.api.serving",
}

__all__ = [
    "ModelRef",
    "ModelVersion",
    "ModelportError",
    "Predictor",
    "Registry",
    "Settings",
    "__version__",
    "export",
    "load_model",
    "save_bundle",
    "save_model",
    "score",
    "serve",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'modelport' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted(__all__)
