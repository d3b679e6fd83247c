"""What monitoring needs to know about a model version: reference statistics, signature, redactions.

A :class:`ModelProfile` is read from a bundle folder (``reference/stats.json`` and the manifest),
and :class:`RegistryProfiles` finds the folder of ``name:version`` through the registry, keeping
the profiles it read (on the object, never in a global) since a version never changes.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelport.bundle.manifest import MANIFEST_FILE, REFERENCE_DIR, Manifest
from modelport.core.errors import IntegrityError, NotFound
from modelport.core.types import Signature
from modelport.registry.registry import Registry

STATS_FILE = f"{REFERENCE_DIR}/stats.json"


@dataclass(frozen=True, slots=True)
class ModelProfile:
    """One model version as monitoring sees it.

    Attributes:
        name: Model name.
        version: Version (``None`` for an unregistered bundle).
        reference: Reference statistics (format of :mod:`modelport.bundle.reference`), or ``None``.
        signature: Input/output signature, if known.
        redacted: Columns with a redaction rule: their logged values are not comparable to the reference.
    """

    name: str
    version: int | None
    reference: dict[str, Any] | None = None
    signature: Signature | None = None
    redacted: tuple[str, ...] = ()

    @classmethod
    def from_bundle(cls, path: Path, *, version: int | None = None) -> ModelProfile:
        """Read the profile of the bundle folder ``path``.

        Raises:
            NotFound: ``path`` holds no manifest.
            IntegrityError: The manifest or the statistics are not valid.
        """
        manifest_path = Path(path) / MANIFEST_FILE
        if not manifest_path.is_file():
            raise NotFound(f"No bundle at {path} ({MANIFEST_FILE} is missing).", hint="Pass a bundle folder.")
        manifest = Manifest.from_yaml(manifest_path.read_text(encoding="utf-8"), source=str(manifest_path))
        return cls(
            name=manifest.name,
            version=version if version is not None else manifest.version,
            reference=read_reference(Path(path)),
            signature=manifest.signature,
            redacted=tuple(sorted(manifest.redaction)),
        )


def read_reference(bundle_dir: Path) -> dict[str, Any] | None:
    """``reference/stats.json`` of a bundle folder, or ``None`` when the bundle has none.

    Raises:
        IntegrityError: The file is not a JSON object.
    """
    path = bundle_dir / STATS_FILE
    if not path.is_file():
        return None
    try:
        stats = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise IntegrityError(f"{path} is not valid JSON ({exc}).", hint="Fetch or re-save a clean bundle.") from exc
    if not isinstance(stats, dict):
        raise IntegrityError(f"{path} is not a JSON object.", hint="Fetch or re-save a clean bundle.")
    return stats


ProfileSource = Callable[[str, int | None], ModelProfile | None]
"""Finds the profile of ``(name, version)``; ``None`` when the version is unknown."""


class RegistryProfiles:
    """A :data:`ProfileSource` backed by the registry (bundles fetched into its local cache).

    Args:
        registry: The registry holding the versions.
    """

    def __init__(self, registry: Registry) -> None:
        self._registry = registry
        self._cache: dict[tuple[str, int], ModelProfile] = {}
        self._lock = threading.Lock()

    def __call__(self, name: str, version: int | None) -> ModelProfile | None:
        """The profile of ``name:version`` (``version=None``: the version ``name`` resolves to)."""
        try:
            mv = self._registry.get(name, version) if version is not None else self._registry.resolve(name)
        except NotFound:
            return None
        key = (mv.name, mv.version)
        with self._lock:
            cached = self._cache.get(key)
        if cached is not None:
            return cached
        profile = ModelProfile.from_bundle(self._registry.fetch(mv), version=mv.version)
        with self._lock:
            self._cache[key] = profile
        return profile
