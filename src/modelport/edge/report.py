"""The export report: sizes, speed before and after, parity, and what quantization did.

:class:`ExportReport` is what :func:`~modelport.edge.export.export_onnx` returns; ``to_dict()``
is the ``--json`` output and ``rows()`` the table the CLI renders.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelport.edge.parity import ParityReport
from modelport.edge.timing import Timing


@dataclass(frozen=True)
class ExportReport:
    """What an export produced and how it compares with the native model.

    Attributes:
        model: Source model name.
        version: Source version (``None`` for a bundle outside the registry).
        source_flavor: The source bundle's flavor.
        converted: What was converted (e.g. ``sklearn Pipeline(StandardScaler, LogisticRegression)``).
        out_dir: The export folder (a bundle of flavor ``onnx``).
        archive: Its ``.tar.gz``.
        opset: ONNX opset of the exported model.
        precision: ``float32`` or ``float64`` (float arithmetic of the exported model).
        quantize: Quantization asked for (``int8``, ``fp16`` or ``None``).
        quantized: Whether the exported model is quantized.
        quantization_note: What quantization did, or why it was skipped.
        size_before_bytes: Bytes of the native model's artifacts.
        size_float_bytes: Bytes of the float ONNX model.
        size_after_bytes: Bytes of the exported ``model.onnx``.
        before: Native timing (``None`` when not measured).
        after: Exported timing (``None`` when not measured).
        parity: One report per data set checked.
        notes: Anything else worth saying (e.g. a float64 fallback).
    """

    model: str
    version: int | None
    source_flavor: str
    converted: str
    out_dir: Path
    archive: Path
    opset: int
    precision: str
    quantize: str | None
    quantized: bool
    quantization_note: str | None
    size_before_bytes: int
    size_float_bytes: int
    size_after_bytes: int
    before: Timing | None
    after: Timing | None
    parity: tuple[ParityReport, ...]
    notes: tuple[str, ...] = ()

    @property
    def model_path(self) -> Path:
        """The exported ``model.onnx``."""
        return self.out_dir / "artifacts" / "model.onnx"

    @property
    def predict_script(self) -> Path:
        """The standalone ``predict.py``."""
        return self.out_dir / "artifacts" / "predict.py"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict of everything (for ``--json``)."""
        return {
            "model": self.model,
            "version": self.version,
            "source_flavor": self.source_flavor,
            "converted": self.converted,
            "out_dir": str(self.out_dir),
            "archive": str(self.archive),
            "model_path": str(self.model_path),
            "predict_script": str(self.predict_script),
            "opset": self.opset,
            "precision": self.precision,
            "quantize": self.quantize,
            "quantized": self.quantized,
            "quantization_note": self.quantization_note,
            "size": {
                "before_bytes": self.size_before_bytes,
                "float_onnx_bytes": self.size_float_bytes,
                "after_bytes": self.size_after_bytes,
                "ratio": _ratio(self.size_after_bytes, self.size_before_bytes),
            },
            "latency_us": {
                "before": None if self.before is None else _latency(self.before),
                "after": None if self.after is None else _latency(self.after),
            },
            "throughput_rows_s": {
                "batch_rows": 1024,
                "before": None if self.before is None else self.before.throughput_rows_s,
                "after": None if self.after is None else self.after.throughput_rows_s,
            },
            "parity": [p.to_dict() for p in self.parity],
            "notes": list(self.notes),
        }

    def rows(self) -> list[tuple[str, str, str, str]]:
        """``(measure, before, after, change)`` rows for a table."""
        table = [
            (
                "size",
                _bytes(self.size_before_bytes),
                _bytes(self.size_after_bytes),
                _times(self.size_after_bytes, self.size_before_bytes),
            )
        ]
        if self.before is not None and self.after is not None:
            b, a = self.before, self.after
            table += [
                ("latency p50 (1 row)", _us(b.latency_median_us), _us(a.latency_median_us), _speedup(b, a, "p50")),
                ("latency p99 (1 row)", _us(b.latency_p99_us), _us(a.latency_p99_us), _speedup(b, a, "p99")),
                (
                    "throughput (1,024 rows)",
                    f"{b.throughput_rows_s:,.0f} rows/s",
                    f"{a.throughput_rows_s:,.0f} rows/s",
                    _times(a.throughput_rows_s, b.throughput_rows_s),
                ),
            ]
        for report in self.parity:
            table.append((f"parity ({report.dataset})", "", report.summary().split(": ", 1)[-1], "ok"))
        return table


def _latency(timing: Timing) -> dict[str, float]:
    return {"median": timing.latency_median_us, "p99": timing.latency_p99_us}


def _ratio(new: float, old: float) -> float | None:
    return None if not old else new / old


def _times(new: float, old: float) -> str:
    ratio = _ratio(new, old)
    return "" if ratio is None else f"x{ratio:.2f}"


def _speedup(before: Timing, after: Timing, which: str) -> str:
    old = before.latency_median_us if which == "p50" else before.latency_p99_us
    new = after.latency_median_us if which == "p50" else after.latency_p99_us
    return "" if not new else f"{old / new:.1f}x faster"


def _us(value: float) -> str:
    return f"{value / 1000:.2f} ms" if value >= 1000 else f"{value:.1f} µs"


def _bytes(size: int) -> str:
    if size < 1024:
        return f"{size} B"
    if size < 1024**2:
        return f"{size / 1024:.1f} KiB"
    return f"{size / 1024**2:.1f} MiB"
