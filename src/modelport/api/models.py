"""Saving, registering and loading models: ``save_model``, ``save_bundle``, ``load_model``."""

from __future__ import annotations

import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from modelport.bundle.archive import unpack
from modelport.bundle.io import load_bundle
from modelport.bundle.io import save_bundle as _save_bundle
from modelport.bundle.manifest import Manifest
from modelport.core.errors import NotFound
from modelport.core.refs import ModelRef
from modelport.core.settings import Settings
from modelport.registry.records import ModelVersion
from modelport.registry.registry import Registry
from modelport.runtime.predictor import Predictor

from .context import open_registry


def save_bundle(
    model: Any,
    path: str | Path,
    *,
    sample_input: Any,
    name: str = "model",
    reference_data: Any = None,
    requirements: Sequence[str] | None = None,
    metrics: Mapping[str, float] | None = None,
    tags: Mapping[str, str] | None = None,
    description: str | None = None,
    trusted_pickle: bool = False,
    flavor: str | None = None,
    redaction: Mapping[str, str] | None = None,
) -> Manifest:
    """Write ``model`` as a bundle folder at ``path`` without registering it.

    Example:
        >>> save_bundle(model, "bundles/churn", sample_input=X.head(50))  # doctest: +SKIP
    """
    return _save_bundle(
        model,
        Path(path),
        name=name,
        sample_input=sample_input,
        reference_data=reference_data,
        requirements=list(requirements) if requirements else None,
        metrics=dict(metrics) if metrics else None,
        tags=dict(tags) if tags else None,
        description=description,
        trusted_pickle=trusted_pickle,
        flavor=flavor,
        redaction=dict(redaction) if redaction else None,
    )


def save_model(
    model: Any,
    name: str,
    *,
    sample_input: Any,
    reference_data: Any = None,
    requirements: Sequence[str] | None = None,
    metrics: Mapping[str, float] | None = None,
    tags: Mapping[str, str] | None = None,
    description: str | None = None,
    registry: Registry | None = None,
    trusted_pickle: bool = False,
    flavor: str | None = None,
    redaction: Mapping[str, str] | None = None,
    reason: str | None = None,
) -> ModelVersion:
    """Bundle ``model`` and register it as the next version of ``name``.

    Example:
        >>> mv = save_model(clf, "churn", sample_input=X_train.head(100), reference_data=X_train)  # doctest: +SKIP
        >>> mv.version  # doctest: +SKIP
        1
    """
    registry = registry if registry is not None else open_registry()
    with tempfile.TemporaryDirectory(prefix="modelport-save-") as tmp:
        bundle_dir = Path(tmp) / "bundle"
        save_bundle(
            model,
            bundle_dir,
            name=name,
            sample_input=sample_input,
            reference_data=reference_data,
            requirements=requirements,
            metrics=metrics,
            tags=tags,
            description=description,
            trusted_pickle=trusted_pickle,
            flavor=flavor,
            redaction=redaction,
        )
        return registry.register(bundle_dir, name=name, reason=reason)


def local_bundle(path: str | Path) -> Path:
    """A bundle folder on disk: ``path`` itself, or a safely unpacked copy of a ``.tar.gz`` archive."""
    path = Path(path)
    if not path.exists():
        raise NotFound(
            f"No bundle at {path}.", hint="Check the path, or use a registry reference like 'name@production'."
        )
    if path.is_file():
        return unpack(path, Path(tempfile.mkdtemp(prefix="modelport-unpacked-")))
    return path


def bundle_path_for(ref: str | ModelRef, *, registry: Registry | None = None) -> tuple[Path, ModelVersion | None]:
    """A local bundle folder for ``ref``: the path itself, an unpacked archive, or the registry's copy."""
    parsed = ModelRef.parse(ref) if isinstance(ref, str) else ref
    if parsed.path is not None:
        return local_bundle(parsed.path), None
    registry = registry if registry is not None else open_registry()
    mv = registry.resolve(parsed)
    return registry.fetch(mv), mv


def load_model(
    ref: str | ModelRef,
    *,
    registry: Registry | None = None,
    settings: Settings | None = None,
    trusted_pickle: bool | None = None,
) -> Predictor:
    """Load a model as a :class:`Predictor` from ``name``, ``name:3``, ``name@alias`` or a bundle path.

    Example:
        >>> predictor = load_model("churn@production")  # doctest: +SKIP
        >>> predictor.predict([{"age": 41, "plan": "pro"}])  # doctest: +SKIP
    """
    parsed = ModelRef.parse(ref) if isinstance(ref, str) else ref
    if registry is None and not parsed.is_path:
        registry = open_registry(settings)
    trusted = trusted_pickle if trusted_pickle is not None else (settings.trusted_pickle if settings else False)
    path, _ = bundle_path_for(parsed, registry=registry)
    return Predictor(load_bundle(path, trusted_pickle=trusted))
