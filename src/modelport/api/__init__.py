"""Layer 4: the composition root and programmatic API.

Wires the registry, bundles, runtimes and monitoring together: ``save_model``, ``load_model``,
``serve``, ``score``, ``export``. The CLI is a thin shell over these functions.
"""

from __future__ import annotations

from .context import open_registry, resolve_settings
from .models import bundle_path_for, load_model, local_bundle, save_bundle, save_model

__all__ = [
    "bundle_path_for",
    "load_model",
    "local_bundle",
    "open_registry",
    "resolve_settings",
    "save_bundle",
    "save_model",
]
