"""The built-in validation gates: signature, holdout metrics, latency, and ONNX-export parity.

Each gate returns a :class:`~modelport.registry.validations.GateResult` and never raises for a
model that misbehaves: a model error becomes a ``failed`` gate naming the error type and
message. A gate whose inputs were not given (no holdout, no reference sample) is ``skipped``;
one with nothing to check (no version to replace, not an export) is ``not_applicable``. User
checks shipped in the bundle are the fifth gate (see :mod:`modelport.governance.checks`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import numpy as np
import pandas as pd

from modelport.bundle.flavors.base import ModelInput
from modelport.core.types import Signature
from modelport.governance.compatibility import breaking_changes
from modelport.governance.holdout import Holdout
from modelport.governance.metrics import regressions, score, task_of
from modelport.registry.validations import GateResult, GateStatus
from modelport.runtime.predictor import PREDICT, PREDICT_PROBA, Predictor

LATENCY_ROWS = 200
"""Single-row predictions timed by the latency gate (the reference sample's first rows, cycled)."""
LATENCY_WARMUP = 3
PARITY_RTOL = 1e-3
PARITY_ATOL = 1e-4
PARITY_MIN_AGREEMENT = 0.99
"""Share of labels an export must predict exactly as its source (float32 may flip near-ties)."""


def describe(exc: BaseException) -> str:
    """``Type: message`` of an exception, first line only (never a traceback)."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def signature_gate(
    challenger: Signature, champion: Signature | None, champion_ref: str | None, acknowledgement: str | None
) -> GateResult:
    """Compatibility with the version the challenger would replace, or a recorded acknowledgement."""
    if champion is None:
        return GateResult("signature", "not_applicable", "no version to replace")
    changes = breaking_changes(champion, challenger)
    if not changes:
        return GateResult("signature", "passed", f"compatible with {champion_ref}", {"against": champion_ref})
    details = {"against": champion_ref, "breaking_changes": changes, "acknowledged": acknowledgement}
    if acknowledgement:
        return GateResult(
            "signature", "passed", f"{len(changes)} breaking change(s) acknowledged: {acknowledgement}", details
        )
    return GateResult(
        "signature",
        "failed",
        f"{len(changes)} breaking change(s) vs {champion_ref}: {'; '.join(changes)} "
        "(acknowledge them with a reason to proceed)",
        details,
    )


def metrics_gate(
    challenger: Predictor,
    champion: Predictor | None,
    holdout: Holdout | None,
    tolerance: float,
    *,
    breaking_acknowledged: bool = False,
) -> GateResult:
    """Holdout metrics of the challenger no worse than the champion's (same rows) beyond ``tolerance``."""
    if task_of(challenger.signature) is None:
        return GateResult("metrics", "not_applicable", "tensor outputs have no standard holdout metric")
    if holdout is None:
        return GateResult("metrics", "skipped", "no holdout given (pass --holdout FILE)")
    try:
        mine = score(challenger, holdout)
    except Exception as exc:  # a model failing on its holdout fails the gate, whatever it raised
        return GateResult("metrics", "failed", f"the challenger cannot score the holdout: {describe(exc)}")
    details: dict[str, object] = {"rows": len(holdout.frame), "source": holdout.source, "challenger": mine}
    if champion is None:
        return GateResult("metrics", "passed", "no champion to compare with; metrics recorded", details)
    details |= {"champion_version": champion.version, "tolerance": tolerance}
    try:
        theirs = score(champion, holdout)
    except Exception as exc:  # the champion cannot read what the challenger reads: a breaking change
        details["champion_error"] = describe(exc)
        status: GateStatus = "passed" if breaking_acknowledged else "failed"
        return GateResult(
            "metrics", status, f"the champion cannot score the holdout ({describe(exc)}); no comparison", details
        )
    details["champion"] = theirs
    worse = regressions(theirs, mine, tolerance)
    if worse:
        return GateResult("metrics", "failed", "worse than the champion: " + "; ".join(worse), details)
    summary = ", ".join(f"{k} {v:.4g}" for k, v in mine.items())
    return GateResult("metrics", "passed", f"{summary} (champion v{champion.version})", details)


def single_rows(sample: ModelInput, count: int) -> Iterator[ModelInput]:
    """``count`` one-row inputs cut from ``sample`` (cycling through its rows)."""
    if isinstance(sample, pd.DataFrame):
        total = len(sample)
        return (sample.iloc[[i % total]] for i in range(count if total else 0))
    if isinstance(sample, dict):
        total = len(next(iter(sample.values()))) if sample else 0
        return ({k: v[i % total : i % total + 1] for k, v in sample.items()} for i in range(count if total else 0))
    total = len(sample)
    return (sample[i % total : i % total + 1] for i in range(count if total else 0))


def latency_gate(
    predictor: Predictor,
    sample: ModelInput | None,
    budget_ms: float,
    *,
    rows: int = LATENCY_ROWS,
    clock: Callable[[], float] = time.perf_counter,
) -> GateResult:
    """p99 of single-row predictions on the reference sample at most ``budget_ms``."""
    if sample is None:
        return GateResult("latency", "skipped", "the bundle has no reference sample to time")
    singles = list(single_rows(sample, rows))
    if not singles:
        return GateResult("latency", "skipped", "the reference sample is empty")
    timings = []
    try:
        for row in singles[:LATENCY_WARMUP]:
            predictor.predict(row)
        for row in singles:
            start = clock()
            predictor.predict(row)
            timings.append((clock() - start) * 1000.0)
    except Exception as exc:  # a model failing on its own reference rows fails the gate
        return GateResult("latency", "failed", f"single-row prediction failed: {describe(exc)}")
    p50, p99 = (float(np.percentile(timings, q)) for q in (50, 99))
    details = {"rows": len(timings), "p50_ms": p50, "p99_ms": p99, "budget_ms": budget_ms}
    if p99 > budget_ms:
        return GateResult("latency", "failed", f"p99 {p99:.3g} ms over the {budget_ms:g} ms budget", details)
    return GateResult("latency", "passed", f"p99 {p99:.3g} ms within the {budget_ms:g} ms budget", details)


def parity_gate(
    export: Predictor,
    source: Predictor | None,
    source_ref: str | None,
    sample: ModelInput | None,
    *,
    source_error: str | None = None,
) -> GateResult:
    """An exported version predicts like the version it was exported from, on the reference sample."""
    if source_ref is None:
        return GateResult("parity", "not_applicable", "not an export of another version")
    if source is None:
        return GateResult("parity", "failed", f"its source {source_ref} cannot be loaded: {source_error}")
    if sample is None:
        return GateResult("parity", "skipped", "no reference sample to compare on")
    outputs = [PREDICT] + ([PREDICT_PROBA] if export.has_proba and source.has_proba else [])
    try:
        mine = export.run(export.coerce(sample), outputs)
        theirs = source.run(source.coerce(sample), outputs)
    except Exception as exc:  # either model failing on the shared rows fails parity
        return GateResult("parity", "failed", f"scoring the reference sample failed: {describe(exc)}")
    output = export.signature.output(PREDICT)
    labels = output is not None and output.kind == "label"
    details: dict[str, object] = {"source": source_ref, "rows": len(mine[PREDICT])}
    problems = []
    for name in outputs:
        if name == PREDICT and labels:
            agreement = float(np.mean(np.asarray(mine[name]).astype(str) == np.asarray(theirs[name]).astype(str)))
            details["label_agreement"] = agreement
            if agreement < PARITY_MIN_AGREEMENT:
                problems.append(f"labels agree on {agreement:.2%} of rows (< {PARITY_MIN_AGREEMENT:.0%})")
            continue
        a, b = np.asarray(mine[name], dtype=np.float64), np.asarray(theirs[name], dtype=np.float64)
        diff = float(np.max(np.abs(a - b))) if a.size else 0.0
        details[f"{name}_max_abs_diff"] = diff
        if a.shape != b.shape or not np.allclose(a, b, rtol=PARITY_RTOL, atol=PARITY_ATOL):
            problems.append(f"{name} differs by up to {diff:.3g} (rtol {PARITY_RTOL:g}, atol {PARITY_ATOL:g})")
    if problems:
        return GateResult("parity", "failed", f"differs from {source_ref}: " + "; ".join(problems), details)
    return GateResult("parity", "passed", f"matches {source_ref} on {details['rows']} reference rows", details)
