"""The built-in gates on real tiny models: signature, metrics, latency (with a fake clock), parity."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from modelport.bundle.io import load_bundle, read_reference_sample
from modelport.core.types import ColumnSpec, Signature
from modelport.governance.gates import latency_gate, metrics_gate, parity_gate, signature_gate, single_rows
from modelport.governance.holdout import load_holdout
from modelport.runtime.predictor import Predictor

from .support import iris_frame


def _predictor(path: Path) -> Predictor:
    return Predictor(load_bundle(path))


def _ticks(step_s: float) -> Iterator[float]:
    now = 0.0
    while True:
        yield now
        now += step_s


def test_signature_gate_fails_on_breaking_changes_unless_acknowledged() -> None:
    old = Signature(kind="tabular", columns=(ColumnSpec(name="a", type="int", dtype="int64"),))
    new = Signature(kind="tabular", columns=(ColumnSpec(name="b", type="int", dtype="int64"),))
    assert signature_gate(new, None, None, None).status == "not_applicable"
    assert signature_gate(old, old, "m:1", None).status == "passed"
    failed = signature_gate(new, old, "m:1", None)
    assert failed.status == "failed"
    assert "new required input column 'b'" in failed.message
    acknowledged = signature_gate(new, old, "m:1", "clients send b from 1 May")
    assert acknowledged.status == "passed"
    assert acknowledged.details["acknowledged"] == "clients send b from 1 May"


def test_metrics_gate_compares_on_the_same_rows(bundles: dict[str, Path]) -> None:
    good, weak = _predictor(bundles["good"]), _predictor(bundles["weak"])
    holdout = load_holdout(iris_frame())
    assert metrics_gate(good, weak, None, 0.01).status == "skipped"
    first = metrics_gate(good, None, holdout, 0.01)
    assert first.status == "passed"
    assert "no champion" in first.message
    assert metrics_gate(good, weak, holdout, 0.01).status == "passed"
    worse = metrics_gate(weak, good, holdout, 0.01)
    assert worse.status == "failed"
    assert "accuracy" in worse.message
    assert worse.details["rows"] == 150
    assert worse.details["champion"]["accuracy"] > worse.details["challenger"]["accuracy"]
    assert metrics_gate(weak, good, holdout, 0.5).status == "passed"  # a loose tolerance lets it through


def test_metrics_gate_fails_when_the_challenger_cannot_read_the_holdout(bundles: dict[str, Path]) -> None:
    holdout = load_holdout(iris_frame().drop(columns=["petal_width"]))
    result = metrics_gate(_predictor(bundles["good"]), None, holdout, 0.01)
    assert result.status == "failed"
    assert "petal_width" in result.message
    assert "Traceback" not in result.message
    champion_blind = metrics_gate(_predictor(bundles["narrow"]), _predictor(bundles["good"]), holdout, 0.01)
    assert champion_blind.status == "failed"
    assert "the champion cannot score" in champion_blind.message
    acknowledged = metrics_gate(
        _predictor(bundles["narrow"]), _predictor(bundles["good"]), holdout, 0.01, breaking_acknowledged=True
    )
    assert acknowledged.status == "passed"


def test_latency_gate_takes_the_p99_of_single_row_predictions(bundles: dict[str, Path]) -> None:
    predictor = _predictor(bundles["good"])
    sample = read_reference_sample(bundles["good"])
    assert sample is not None
    ticks = _ticks(0.004)  # every clock read advances 4 ms: each prediction "takes" 4 ms
    passed = latency_gate(predictor, sample, 5.0, rows=20, clock=lambda: next(ticks))
    assert passed.status == "passed"
    assert passed.details["rows"] == 20
    assert passed.details["p99_ms"] == pytest.approx(4.0)
    ticks = _ticks(0.004)
    failed = latency_gate(predictor, sample, 3.0, rows=20, clock=lambda: next(ticks))
    assert failed.status == "failed"
    assert "over the 3 ms budget" in failed.message
    assert latency_gate(predictor, None, 5.0).status == "skipped"


def test_single_rows_cut_frames_arrays_and_dicts() -> None:
    frame = iris_frame().iloc[:3]
    assert [len(r) for r in single_rows(frame, 5)] == [1] * 5  # type: ignore[arg-type]
    array = np.arange(6).reshape(3, 2)
    assert [r.tolist() for r in single_rows(array, 4)] == [[[0, 1]], [[2, 3]], [[4, 5]], [[0, 1]]]  # type: ignore[union-attr]
    rows = list(single_rows({"x": array}, 2))
    assert [r["x"].shape for r in rows] == [(1, 2), (1, 2)]  # type: ignore[index]


def test_parity_gate_compares_an_export_with_its_source(bundles: dict[str, Path], tmp_path: Path) -> None:
    source = _predictor(bundles["good"])
    sample = read_reference_sample(bundles["good"])
    same = parity_gate(_predictor(bundles["good"]), source, "iris:1", sample)
    assert same.status == "passed"
    assert same.details["label_agreement"] == 1.0
    assert same.details["predict_proba_max_abs_diff"] == 0.0
    drifted = parity_gate(_predictor(bundles["weak"]), source, "iris:1", sample)
    assert drifted.status == "failed"
    assert "predict_proba differs" in drifted.message
    assert parity_gate(source, None, None, sample).status == "not_applicable"
    missing = parity_gate(source, None, "iris:9", sample, source_error="NotFound: no version 9")
    assert missing.status == "failed"
    assert "iris:9 cannot be loaded" in missing.message
