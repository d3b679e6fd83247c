"""The CI example: the script parses, the workflow runs it, and the training step writes what validation reads."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import yaml

from modelport.bundle.io import verify_bundle

CI = Path(__file__).resolve().parents[2] / "examples" / "ci"


def test_the_pipeline_script_is_valid_bash_and_runs_the_documented_commands() -> None:
    script = CI / "pipeline.sh"
    subprocess.run(["bash", "-n", str(script)], check=True)
    text = script.read_text(encoding="utf-8")
    for command in (
        "modelport models register",
        "modelport validate",
        "--against production",
        "--to staging",
        "--to production",
        "modelport approve",
    ):
        assert command in text
    assert text.startswith("#!/usr/bin/env bash\n")
    assert "set -euo pipefail" in text


def test_the_workflow_runs_the_pipeline_with_secrets_not_literals() -> None:
    workflow = yaml.safe_load((CI / "github-actions.yml").read_text(encoding="utf-8"))
    job = workflow["jobs"]["train-validate-promote"]
    assert any(step.get("run") == "bash examples/ci/pipeline.sh" for step in job["steps"])
    for name in ("MODELPORT_DB_URL", "MODELPORT_API_KEY", "MODELPORT_ARTIFACTS_URL"):
        assert job["env"][name].startswith("${{ secrets.")


def test_training_writes_a_valid_bundle_and_a_labelled_holdout(tmp_path: Path) -> None:
    out = tmp_path / "ci"
    subprocess.run(
        [sys.executable, str(CI / "train.py"), "--name", "churn", "--out", str(out)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    manifest = verify_bundle(out / "bundle")
    assert manifest.name == "churn"
    assert manifest.metrics["holdout_accuracy"] > 0.9
    holdout = pd.read_csv(out / "holdout.csv")
    assert "target" in holdout.columns
    assert len(holdout) == 143
    assert set(manifest.signature.column_names) == set(holdout.columns) - {"target"}
