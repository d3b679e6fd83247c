"""Edge export, composed: resolve a reference, export to ONNX, register the export as a new version."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelport.bundle.io import load_bundle
from modelport.core.settings import Settings
from modelport.edge.export import export_onnx
from modelport.edge.report import ExportReport
from modelport.registry.records import ModelVersion
from modelport.registry.registry import Registry

from .context import open_registry, resolve_settings
from .models import bundle_path_for

FORMATS = ("onnx",)


@dataclass(frozen=True)
class ExportResult:
    """An export and, when registered, the version it became."""

    report: ExportReport
    registered: ModelVersion | None

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-ready data, with ``registered`` as ``name:version`` or ``None``."""
        registered = f"{self.registered.name}:{self.registered.version}" if self.registered else None
        return {**self.report.to_dict(), "registered": registered}


def default_export_dir(settings: Settings, name: str, version: int | None, quantize: str | None) -> Path:
    """``MODELPORT_HOME/exports/<name>-v<version>-onnx[-int8]``."""
    suffix = f"-{quantize}" if quantize else ""
    label = f"v{version}" if version is not None else "bundle"
    return settings.home.resolve() / "exports" / f"{name}-{label}-onnx{suffix}"


def export(
    ref: str,
    *,
    format: str = "onnx",
    quantize: str | None = None,
    opset: int | None = None,
    out_dir: Path | None = None,
    check_data: Path | None = None,
    register: bool = True,
    timings: bool = True,
    settings: Settings | None = None,
    registry: Registry | None = None,
) -> ExportResult:
    """Export ``ref`` to a compact ONNX bundle (optionally quantized), parity-checked.

    With ``register`` (default) the export is registered as the next version of the same model,
    flavor ``onnx``, so it can be served and batch-scored like any other version.

    Example:
        >>> modelport.api.export("churn@production", quantize="int8")  # doctest: +SKIP
    """
    from modelport.core.errors import Unsupported

    if format not in FORMATS:
        raise Unsupported(f"Unknown export format {format!r}.", hint=f"Use one of: {', '.join(FORMATS)}.")
    settings = resolve_settings(settings)
    if registry is None:
        registry = open_registry(settings)
    path, mv = bundle_path_for(ref, registry=registry)
    bundle = load_bundle(path, trusted_pickle=settings.trusted_pickle)
    name = mv.name if mv is not None else bundle.manifest.name
    target = out_dir or default_export_dir(settings, name, mv.version if mv else None, quantize)
    report = export_onnx(
        bundle,
        out_dir=target,
        quantize=quantize,
        opset=opset,
        check_data=check_data,
        timings=timings,
        user=settings.actor,
    )
    registered = None
    if register:
        reason = f"edge export of {name}:{mv.version}" if mv else "edge export"
        registered = registry.register(report.out_dir, name=name, reason=reason)
    return ExportResult(report=report, registered=registered)
