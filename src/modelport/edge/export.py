"""``export_onnx``: a bundle to a parity-checked ONNX export folder, its archive and a report.

The steps, in order, with nothing written until the last one: convert (scikit-learn falls back
to float64 arithmetic when float32 misses parity), check the float model against the native one
on the reference sample (and the check data), quantize if asked and check again with the
quantized thresholds, time both models, then write the folder (a bundle of flavor ``onnx``,
see :mod:`modelport.edge.package`) and its ``.tar.gz``.

Example:
    >>> bundle = load_bundle("bundles/churn")  # doctest: +SKIP
    >>> report = export_onnx(bundle, quantize="int8", out_dir=Path("exports/churn"))  # doctest: +SKIP
    >>> report.to_dict()["size"]  # doctest: +SKIP
"""

from __future__ import annotations

import importlib.resources
from collections.abc import Callable
from pathlib import Path
from typing import Any

from modelport.bundle.flavors.base import ModelAdapter, ModelInput
from modelport.bundle.loaded import LoadedBundle
from modelport.bundle.manifest import ARTIFACTS_DIR
from modelport.core.errors import IntegrityError, Unsupported
from modelport.edge.convert import Conversion, convert
from modelport.edge.package import check_free, flavor_options, write_export
from modelport.edge.parity import ParityError, ParityReport, ParityThresholds, check_parity, parity_data
from modelport.edge.quantize import QUANTIZE_MODES, Quantized
from modelport.edge.quantize import quantize as quantize_model
from modelport.edge.report import ExportReport
from modelport.edge.runner import EdgeRunner
from modelport.edge.timing import BATCH_ROWS, Timing, measure, rows
from modelport.runtime.coercion import coerce_input


def export_onnx(
    bundle: LoadedBundle,
    *,
    out_dir: Path | str,
    quantize: str | None = None,
    opset: int | None = None,
    check_data: Any = None,
    thresholds: ParityThresholds | None = None,
    timings: bool = True,
    user: str | None = None,
) -> ExportReport:
    """Export ``bundle`` to ONNX in ``out_dir`` (plus ``<out_dir>.tar.gz``), parity-checked.

    Args:
        bundle: A loaded bundle of flavor sklearn, xgboost, lightgbm, torch or onnx.
        out_dir: The export folder to create (must not exist, or be empty).
        quantize: ``int8``, ``fp16`` or ``None``. Tree ensembles are never quantized (the report says why).
        opset: ONNX opset to target (default 17; XGBoost/LightGBM at most 15).
        check_data: More rows to check parity on: a CSV / Parquet / JSON Lines path, or in-memory data.
        thresholds: Parity limits (default :meth:`ParityThresholds.for_export` for the quantization).
        timings: Measure latency and throughput before and after (a few seconds).
        user: Author recorded in the export's provenance (default: the OS user).

    Returns:
        The :class:`ExportReport`.

    Raises:
        Unsupported: The model or one of its steps cannot be converted (the message names it).
        ParityError: The export does not answer like the native model; nothing is written.
        Conflict: ``out_dir`` or its archive already exists.
    """
    target = Path(out_dir)
    if quantize is not None and quantize not in QUANTIZE_MODES:
        raise Unsupported(
            f"Unknown quantization {quantize!r}.", hint=f"Use one of {', '.join(QUANTIZE_MODES)}, or none."
        )
    check_free(target)
    datasets = parity_data(bundle, check_data)
    conversion, float_reports, notes = faithful_conversion(bundle, datasets, opset=opset)
    reports = float_reports
    quantized: Quantized | None = None
    final = conversion.model_bytes
    if quantize is not None:
        quantized = quantize_model(conversion, quantize)
        if quantized.model_bytes is not None:
            limits = thresholds or ParityThresholds.for_export(quantize)
            runner = EdgeRunner.from_bytes(quantized.model_bytes, source=f"the {quantize} model")
            reports = check_parity(bundle.adapter, runner, bundle.manifest.signature, datasets, limits)
            final = quantized.model_bytes
    elif thresholds is not None:
        runner = EdgeRunner.from_bytes(final)
        reports = check_parity(bundle.adapter, runner, bundle.manifest.signature, datasets, thresholds)
    before = after = None
    if timings:
        before, after = _timings(bundle, EdgeRunner.from_bytes(final), datasets[0][1])
    applied = quantized is not None and quantized.applied
    _, archive = write_export(
        target,
        source=bundle,
        model_bytes=final,
        options=flavor_options(conversion.spec, bundle.manifest.signature.column_names, _proto(final)),
        metrics=_parity_metrics(reports),
        tags=_tags(bundle, conversion, quantize if applied else None),
        description=_description(bundle, conversion, quantize if applied else None),
        script=_script(),
        user=user,
    )
    return ExportReport(
        model=bundle.manifest.name,
        version=bundle.manifest.version,
        source_flavor=bundle.manifest.flavor,
        converted=conversion.description,
        out_dir=target,
        archive=archive,
        opset=conversion.opset,
        precision=conversion.precision,
        quantize=quantize,
        quantized=applied,
        quantization_note=None if quantized is None else quantized.note,
        size_before_bytes=_native_size(bundle),
        size_float_bytes=len(conversion.model_bytes),
        size_after_bytes=len(final),
        before=before,
        after=after,
        parity=reports,
        notes=notes,
    )


def faithful_conversion(
    bundle: LoadedBundle,
    datasets: list[tuple[str, ModelInput]],
    *,
    opset: int | None = None,
    thresholds: ParityThresholds | None = None,
    adapter: Callable[[Conversion], ModelAdapter] | None = None,
) -> tuple[Conversion, tuple[ParityReport, ...], tuple[str, ...]]:
    """The float conversion of ``bundle`` that passes parity on ``datasets``, with its reports and notes.

    float32 first; a scikit-learn model that misses parity in float32 (a value one float32 step
    away from a tree's split after float32 preprocessing) is converted again with float64 arithmetic.

    Args:
        bundle: The bundle to convert.
        datasets: ``(name, data)`` pairs to check on.
        opset: ONNX opset to target.
        thresholds: Parity limits (default: the float export's).
        adapter: Builds the adapter that runs a conversion (default: an :class:`EdgeRunner`).

    Raises:
        ParityError: Neither precision passes (the float32 failure is raised).
        Unsupported: The model cannot be converted.
    """
    limits = thresholds or ParityThresholds.for_export(None)
    build = adapter or _runner
    signature = bundle.manifest.signature
    conversion = convert(bundle, opset=opset)
    try:
        return conversion, check_parity(bundle.adapter, build(conversion), signature, datasets, limits), ()
    except ParityError as first_failure:
        if bundle.manifest.flavor != "sklearn":
            raise
        try:
            wide = convert(bundle, opset=opset, precision="float64")
            reports = check_parity(bundle.adapter, build(wide), signature, datasets, limits)
        except (ParityError, Unsupported, IntegrityError):
            raise first_failure from None
        note = "float32 arithmetic missed parity (values near split thresholds); exported with float64 arithmetic"
        return wide, reports, (note,)


def _runner(conversion: Conversion) -> ModelAdapter:
    return EdgeRunner.from_bytes(conversion.model_bytes)


def _timings(bundle: LoadedBundle, runner: EdgeRunner, sample: ModelInput) -> tuple[Timing, Timing]:
    signature = bundle.manifest.signature
    native: ModelAdapter = bundle.adapter
    one, batch = rows(sample, 1), rows(sample, BATCH_ROWS)
    before = measure(
        native.predict,
        coerce_input(one, signature, native.input_format),
        coerce_input(batch, signature, native.input_format),
    )
    session, names = runner.session, list(runner.spec.output_names)
    after = measure(
        lambda feed: session.run(names, feed),
        runner.feed(coerce_input(one, signature, runner.input_format)),
        runner.feed(coerce_input(batch, signature, runner.input_format)),
    )
    return before, after


def _native_size(bundle: LoadedBundle) -> int:
    prefix = f"{ARTIFACTS_DIR}/"
    return sum(a.size for a in bundle.manifest.artifacts if a.path.startswith(prefix))


def _parity_metrics(reports: tuple[ParityReport, ...]) -> dict[str, float]:
    metrics: dict[str, float] = {}
    for report in reports:
        key = "parity_" + report.dataset.replace(" ", "_")
        metrics[f"{key}_rows"] = float(report.rows)
        if report.label_agreement is not None:
            metrics[f"{key}_label_agreement"] = report.label_agreement
        if report.max_proba_diff is not None:
            metrics[f"{key}_max_proba_diff"] = report.max_proba_diff
        if report.max_value_diff is not None:
            metrics[f"{key}_max_value_diff"] = report.max_value_diff
    return metrics


def _tags(bundle: LoadedBundle, conversion: Conversion, quantized: str | None) -> dict[str, str]:
    manifest = bundle.manifest
    source = manifest.name if manifest.version is None else f"{manifest.name}:{manifest.version}"
    return {
        "export.format": "onnx",
        "export.source": source,
        "export.source_flavor": manifest.flavor,
        "export.quantization": quantized or "none",
        "export.precision": conversion.precision,
        "export.opset": str(conversion.opset),
    }


def _description(bundle: LoadedBundle, conversion: Conversion, quantized: str | None) -> str:
    manifest = bundle.manifest
    version = "" if manifest.version is None else f" version {manifest.version}"
    how = f", {quantized}" if quantized else ""
    return f"ONNX export of {manifest.name}{version} ({conversion.description}{how})."


def _script() -> str:
    """The source of :mod:`modelport.edge.standalone_predict`, read as a package resource (not imported)."""
    return importlib.resources.files("modelport.edge").joinpath("standalone_predict.py").read_text(encoding="utf-8")


def _proto(model_bytes: bytes) -> Any:
    import onnx

    return onnx.load_model_from_string(model_bytes)
