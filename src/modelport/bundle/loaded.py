"""A bundle after loading: its manifest, the model adapter, and the reference statistics."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelport.bundle.flavors.base import ModelAdapter
from modelport.bundle.manifest import Manifest


@dataclass(frozen=True)
class LoadedBundle:
    """A verified, loaded bundle.

    Attributes:
        path: The bundle folder.
        manifest: Its manifest (with ``name``/``version`` set when it came from the registry).
        adapter: The model, ready to call.
        reference: Reference statistics as stored in ``reference/stats.json`` (a plain dict in the
            documented format of :mod:`modelport.bundle.reference`), or ``None``.
    """

    path: Path
    manifest: Manifest
    adapter: ModelAdapter
    reference: dict[str, Any] | None = None
