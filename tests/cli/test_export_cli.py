"""``modelport export`` end to end: ONNX export registered as a new version that predicts the same."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from .conftest import CliRunner


def test_export_int8_registers_an_onnx_version(cli: CliRunner, tmp_path: Path) -> None:
    assert cli("quickstart").exit_code == 0
    result = cli("export", "quickstart-model@production", "--quantize", "int8", "--json")
    assert result.exit_code == 0, result.stderr
    report = result.json()
    assert report["registered"] == "quickstart-model:2"
    out_dir = Path(report["out_dir"])
    assert (out_dir / "artifacts" / "model.onnx").is_file()
    assert Path(report["archive"]).is_file()

    from modelport.api import load_model

    os.environ["MODELPORT_HOME"] = str(tmp_path / "home")
    frame = pd.read_csv(tmp_path / "home" / "quickstart" / "patients.csv")
    native = load_model("quickstart-model:1").predict_proba(frame)
    exported = load_model("quickstart-model:2")
    assert exported.manifest.flavor == "onnx"
    np.testing.assert_allclose(exported.predict_proba(frame), native, atol=1e-4)
    assert exported.predict(frame).tolist() == load_model("quickstart-model:1").predict(frame).tolist()


def test_export_mistakes(cli: CliRunner) -> None:
    assert cli("quickstart").exit_code == 0
    bad_q = cli("export", "quickstart-model@production", "--quantize", "int4", "--no-register")
    assert bad_q.exit_code != 0
    assert "int4" in bad_q.stderr
    bad_fmt = cli("export", "quickstart-model@production", "--format", "tflite")
    assert bad_fmt.exit_code != 0
    assert "tflite" in bad_fmt.stderr
    assert "Traceback" not in bad_fmt.stderr
