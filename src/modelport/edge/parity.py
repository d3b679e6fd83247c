"""Parity: does the exported model answer like the native one, on real rows?

Both models predict on the same rows (the bundle's reference sample, and check data if given);
:func:`compare` measures label agreement, the largest probability difference and the largest
value difference (``|a - b| / max(1, |b|)``: absolute near zero, relative for large values),
and keeps the worst rows. Below the thresholds, :func:`check_parity` raises :class:`ParityError`
with the report. Defaults: float exports must agree on every label, with probabilities and
values within 1e-4; int8 on at least 99.5% of labels (argmax for multi-column tensor outputs,
whose raw values are then not judged), regression values within 0.1; fp16 on 99.5% of labels,
probabilities and values within 1e-2.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from modelport.bundle.flavors.base import ModelAdapter, ModelInput
from modelport.bundle.io import read_reference_sample
from modelport.bundle.loaded import LoadedBundle
from modelport.core.errors import ModelportError, NotFound, ValidationError
from modelport.core.types import Signature
from modelport.runtime.coercion import coerce_input

WORST_ROWS = 5
"""How many of the worst rows a report keeps."""


class ParityError(ModelportError):
    """The exported model does not answer like the native one within the thresholds.

    Attributes:
        reports: The parity reports, the failing one among them.
    """

    http_status = 422
    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None, reports: tuple[ParityReport, ...] = ()) -> None:
        super().__init__(message, hint=hint)
        self.reports = reports

    def to_dict(self) -> dict[str, Any]:
        """The error body, with the parity reports (worst rows included)."""
        return {**super().to_dict(), "parity": [r.to_dict() for r in self.reports]}


@dataclass(frozen=True)
class ParityThresholds:
    """Limits an export must meet.

    Attributes:
        min_label_agreement: Share of rows whose labels (or argmax) must agree, 0..1.
        max_proba_diff: Largest allowed absolute probability difference (``None``: not checked).
        max_value_diff: Largest allowed ``|a - b| / max(1, |b|)`` for values (``None``: not checked).
        values_with_labels: Whether a tensor output that gives labels (its argmax) is also held to
            ``max_value_diff`` (lossy exports judge such outputs by their labels only).
    """

    min_label_agreement: float = 1.0
    max_proba_diff: float | None = 1e-4
    max_value_diff: float | None = 1e-4
    values_with_labels: bool = True

    @classmethod
    def for_export(cls, quantize: str | None) -> ParityThresholds:
        """The defaults for a float (``None``), ``int8`` or ``fp16`` export."""
        if quantize == "int8":
            return cls(min_label_agreement=0.995, max_proba_diff=None, max_value_diff=0.1, values_with_labels=False)
        if quantize == "fp16":
            return cls(min_label_agreement=0.995, max_proba_diff=1e-2, max_value_diff=1e-2)
        return cls()

    @classmethod
    def exact(cls) -> ParityThresholds:
        """What the server's ONNX fast path requires: every label, probabilities within 1e-5."""
        return cls(min_label_agreement=1.0, max_proba_diff=1e-5, max_value_diff=1e-5)


@dataclass(frozen=True)
class WorstRow:
    """One row where the models differ most.

    Attributes:
        row: Position in the checked data (0-based).
        native: The native model's prediction (label or value; first values of a tensor).
        exported: The exported model's.
        diff: The row's largest probability or value difference.
        inputs: The row's input values (first columns), for showing.
    """

    row: int
    native: Any
    exported: Any
    diff: float
    inputs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ParityReport:
    """How closely the exported model follows the native one on one data set.

    Attributes:
        dataset: ``reference sample`` or ``check data``.
        rows: Rows compared.
        label_agreement: Share of agreeing labels (argmax for multi-column tensors), or ``None``.
        max_proba_diff: Largest absolute probability difference, or ``None``.
        max_value_diff: Largest ``|a - b| / max(1, |b|)`` of values or tensors, or ``None``.
        thresholds: The limits applied.
        failures: Why it failed (empty when it passed).
        worst: The worst rows, worst first.
    """

    dataset: str
    rows: int
    label_agreement: float | None
    max_proba_diff: float | None
    max_value_diff: float | None
    thresholds: ParityThresholds
    failures: tuple[str, ...] = ()
    worst: tuple[WorstRow, ...] = ()

    @property
    def passed(self) -> bool:
        """Whether every threshold held."""
        return not self.failures

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict (``passed`` included)."""
        return {**_plain(asdict(self)), "passed": self.passed}

    def summary(self) -> str:
        """One line: rows, agreement and differences."""
        parts = [f"{self.dataset}: {self.rows} rows"]
        if self.label_agreement is not None:
            parts.append(f"labels agree {self.label_agreement:.2%}")
        if self.max_proba_diff is not None:
            parts.append(f"max |Δp| {self.max_proba_diff:.2e}")
        if self.max_value_diff is not None:
            parts.append(f"max value Δ {self.max_value_diff:.2e}")
        return ", ".join(parts)


def parity_data(bundle: LoadedBundle, check_data: Any = None) -> list[tuple[str, ModelInput]]:
    """The data sets to check on: the reference sample, and ``check_data`` (a path or in-memory data).

    Raises:
        ValidationError: There is neither a reference sample nor check data.
        NotFound: ``check_data`` names a file that does not exist.
    """
    sets: list[tuple[str, ModelInput]] = []
    sample = read_reference_sample(bundle.path)
    if sample is not None:
        sets.append(("reference sample", sample))
    if check_data is not None:
        sets.append(("check data", read_data(check_data, bundle.manifest.signature)))
    if not sets:
        raise ValidationError(
            f"Bundle {bundle.manifest.name!r} has no reference sample to check the export against.",
            hint="Pass check_data (a CSV, Parquet or JSON Lines file of real inputs), or re-save the bundle.",
        )
    return sets


def read_data(data: Any, signature: Signature) -> ModelInput:
    """``data`` as model input: a path to CSV / Parquet / JSON Lines is read, anything else passes."""
    if not isinstance(data, str | Path):
        return data  # type: ignore[no-any-return]
    path = Path(data)
    if not path.is_file():
        raise NotFound(f"Check data file {str(path)!r} does not exist.", hint="Pass a CSV, Parquet or JSONL file.")
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        frame = pd.read_parquet(path)
    elif suffix in (".jsonl", ".ndjson", ".json"):
        frame = pd.read_json(path, lines=suffix != ".json")
    elif suffix in (".csv", ".txt"):
        frame = pd.read_csv(path)
    else:
        raise ValidationError(
            f"Check data file {str(path)!r} has an unknown format {suffix!r}.",
            hint="Use .csv, .parquet or .jsonl.",
        )
    if signature.kind == "tensor" and len(signature.tensors) == 1:
        return frame.to_numpy()
    return frame


def check_parity(
    native: ModelAdapter,
    exported: ModelAdapter,
    signature: Signature,
    datasets: list[tuple[str, ModelInput]],
    thresholds: ParityThresholds,
) -> tuple[ParityReport, ...]:
    """Compare ``exported`` with ``native`` on every data set; raise :class:`ParityError` on a failure."""
    reports = tuple(
        run_comparison(native, exported, signature, data, dataset=name, thresholds=thresholds)
        for name, data in datasets
    )
    failed = [r for r in reports if not r.passed]
    if failed:
        raise ParityError(_message(failed[0]), hint=_HINT, reports=reports)
    return reports


_HINT = (
    "Export without quantization (or with fp16 instead of int8), loosen the thresholds if the difference is "
    "acceptable, or serve the native bundle instead. Nothing was written."
)


def run_comparison(
    native: ModelAdapter,
    exported: ModelAdapter,
    signature: Signature,
    data: ModelInput,
    *,
    dataset: str,
    thresholds: ParityThresholds,
) -> ParityReport:
    """Predict with both adapters on ``data`` (coerced to each one's input format) and compare."""
    native_input = coerce_input(data, signature, native.input_format)
    exported_input = coerce_input(data, signature, exported.input_format)
    want = np.asarray(native.predict(native_input))
    got = np.asarray(exported.predict(exported_input))
    want_proba = got_proba = None
    if native.has_proba and exported.has_proba:
        want_proba = np.asarray(native.predict_proba(native_input), dtype=np.float64)
        got_proba = np.asarray(exported.predict_proba(exported_input), dtype=np.float64)
    return compare(want, got, want_proba, got_proba, thresholds=thresholds, dataset=dataset, inputs=_rows(native_input))


def compare(
    native: np.ndarray,
    exported: np.ndarray,
    native_proba: np.ndarray | None,
    exported_proba: np.ndarray | None,
    *,
    thresholds: ParityThresholds,
    dataset: str,
    inputs: list[dict[str, Any]] | None = None,
) -> ParityReport:
    """The :class:`ParityReport` of two models' answers on the same rows."""
    rows = int(native.shape[0]) if native.ndim else 1
    if exported.shape[0] != rows:
        return ParityReport(
            dataset, rows, None, None, None, thresholds,
            failures=(f"the exported model gave {exported.shape[0]} rows for {rows}",),
        )  # fmt: skip
    numeric = native.dtype.kind in "fiub" and exported.dtype.kind in "fiub"
    is_label = native_proba is not None or not numeric or native.dtype.kind in "iub"
    agree: np.ndarray | None = None
    row_diff = np.zeros(rows)
    value_diff = None
    if is_label:
        agree = np.array([a == b for a, b in zip(native.tolist(), exported.tolist(), strict=True)], dtype=bool)
    else:
        scaled = np.abs(native.astype(np.float64) - exported.astype(np.float64)) / np.maximum(1.0, np.abs(native))
        per_row = scaled.reshape(rows, -1).max(axis=1) if rows else np.zeros(0)
        value_diff = float(per_row.max()) if rows else 0.0
        row_diff = np.maximum(row_diff, per_row)
        if native.ndim == 2 and native.shape[1] > 1:
            agree = native.argmax(axis=1) == exported.argmax(axis=1)
    proba_diff = None
    if native_proba is not None and exported_proba is not None:
        per_row = np.abs(native_proba - exported_proba).reshape(rows, -1).max(axis=1) if rows else np.zeros(0)
        proba_diff = float(per_row.max()) if rows else 0.0
        row_diff = np.maximum(row_diff, per_row)
    agreement = None if agree is None else (float(agree.mean()) if rows else 1.0)
    failures = _failures(agreement, proba_diff, value_diff, thresholds)
    worst = _worst(native, exported, agree, row_diff, inputs or [])
    return ParityReport(dataset, rows, agreement, proba_diff, value_diff, thresholds, failures, worst)


def _failures(
    agreement: float | None, proba_diff: float | None, value_diff: float | None, limits: ParityThresholds
) -> tuple[str, ...]:
    failures = []
    if agreement is not None and agreement < limits.min_label_agreement:
        failures.append(f"labels agree on {agreement:.2%} of rows (need ≥ {limits.min_label_agreement:.2%})")
    if proba_diff is not None and limits.max_proba_diff is not None and proba_diff > limits.max_proba_diff:
        failures.append(f"probabilities differ by up to {proba_diff:.2e} (limit {limits.max_proba_diff:.0e})")
    judged = agreement is None or limits.values_with_labels
    if judged and value_diff is not None and limits.max_value_diff is not None and value_diff > limits.max_value_diff:
        failures.append(f"values differ by up to {value_diff:.2e} (limit {limits.max_value_diff:.0e})")
    return tuple(failures)


def _worst(
    native: np.ndarray,
    exported: np.ndarray,
    agree: np.ndarray | None,
    row_diff: np.ndarray,
    inputs: list[dict[str, Any]],
) -> tuple[WorstRow, ...]:
    score = row_diff + (0.0 if agree is None else (~agree) * 1e9)
    order = [int(i) for i in np.argsort(-score, kind="stable")[:WORST_ROWS] if score[i] > 0]
    return tuple(
        WorstRow(
            row=i,
            native=_show(native[i]),
            exported=_show(exported[i]),
            diff=float(row_diff[i]),
            inputs=inputs[i] if i < len(inputs) else {},
        )
        for i in order
    )


def _show(value: Any) -> Any:
    array = np.asarray(value)
    if array.ndim == 0:
        return _plain(array.item())
    return [_plain(v) for v in array.reshape(-1)[:4].tolist()]


def _rows(data: ModelInput, limit: int = 8) -> list[dict[str, Any]]:
    """Each row's first ``limit`` input values, for showing the worst rows."""
    if isinstance(data, pd.DataFrame):
        head = data.iloc[:, :limit]
        return [{str(k): _plain(v) for k, v in row.items()} for row in head.to_dict(orient="records")]
    if isinstance(data, dict):
        first = next(iter(data.values()), np.zeros((0,)))
        data = np.asarray(first)
    flat = np.asarray(data).reshape(len(data), -1)[:, :limit]
    return [{f"x{j}": _plain(v) for j, v in enumerate(row)} for row in flat.tolist()]


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def _message(report: ParityReport) -> str:
    worst = "; ".join(
        f"row {w.row}: native {w.native!r}, exported {w.exported!r} (Δ {w.diff:.2e})" for w in report.worst[:3]
    )
    text = f"The export does not match the native model on the {report.dataset} ({report.rows} rows): "
    text += "; ".join(report.failures) + "."
    return f"{text} Worst rows: {worst}." if worst else text
