"""User checks shipped in a bundle: trust required, hash-checked, each check's verdict reported."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from modelport.bundle.flavors.base import PickleLoadWarning
from modelport.bundle.io import load_bundle
from modelport.governance.checks import CHECKS_FILE, checks_gate
from modelport.governance.holdout import load_holdout
from modelport.runtime.predictor import Predictor

from .support import add_checks, iris_frame

CHECKS = """
import numpy as np

MARKER = []

def check_accuracy(predictor, holdout):
    predicted = predictor.predict(holdout.drop(columns=["target", "petal_area"]))
    assert np.mean(predicted == holdout["target"].to_numpy()) > 0.9, "accuracy too low"

def check_setosa(predictor, holdout):
    return predictor.predict([[5.1, 3.5, 1.4, 0.2]])[0] == 0

def check_never(predictor, holdout):
    return False

def helper(predictor, holdout):
    raise RuntimeError("not a check: never called")
"""


@pytest.fixture
def checked(bundles: dict[str, Path], tmp_path: Path) -> Path:
    bundle = tmp_path / "checked"
    shutil.copytree(bundles["good"], bundle)
    return add_checks(bundle, CHECKS)


def test_no_checks_file_is_not_applicable(bundles: dict[str, Path]) -> None:
    predictor = Predictor(load_bundle(bundles["good"]))
    assert checks_gate(predictor, bundles["good"], None, trusted_code=True).status == "not_applicable"


def test_shipped_checks_do_not_run_without_trust(checked: Path) -> None:
    predictor = Predictor(load_bundle(checked))
    result = checks_gate(predictor, checked, load_holdout(iris_frame()), trusted_code=False)
    assert result.status == "skipped"
    assert "operator's trust" in result.message


def test_trusted_checks_run_in_name_order_with_the_holdout(checked: Path) -> None:
    predictor = Predictor(load_bundle(checked))
    modules_before = set(sys.modules)
    with pytest.warns(PickleLoadWarning, match="Running checks.py"):
        result = checks_gate(predictor, checked, load_holdout(iris_frame()), trusted_code=True)
    assert set(sys.modules) == modules_before  # never registered as an importable module
    assert result.status == "failed"
    assert result.details["checks"] == {
        "check_accuracy": "passed",
        "check_never": "failed: returned False",
        "check_setosa": "passed",
    }
    assert result.message == "1 of 3 check(s) failed: check_never (returned False)"


def test_a_check_that_raises_fails_with_its_message(checked: Path) -> None:
    predictor = Predictor(load_bundle(checked))
    with pytest.warns(PickleLoadWarning):
        result = checks_gate(predictor, checked, None, trusted_code=True)  # no holdout: check_accuracy raises
    assert result.details["checks"]["check_accuracy"].startswith("failed: AttributeError")


def test_a_tampered_checks_file_never_runs(checked: Path) -> None:
    predictor = Predictor(load_bundle(checked))
    (checked / CHECKS_FILE).write_text("raise SystemExit('pwned')\n", encoding="utf-8")
    result = checks_gate(predictor, checked, None, trusted_code=True)
    assert result.status == "failed"
    assert "IntegrityError" in result.message
