"""The public surface: exported names, a side-effect-free import, one CLI flag per setting."""

from __future__ import annotations

import subprocess
import sys

import modelport
from modelport.core.settings import Settings

HEAVY = ["sklearn", "torch", "xgboost", "lightgbm", "onnxruntime", "skl2onnx", "pandas", "sqlalchemy", "starlette"]


def test_exported_members() -> None:
    assert modelport.__all__ == sorted(modelport.__all__)
    for name in modelport.__all__:
        assert getattr(modelport, name) is not None, name


def test_import_does_no_work() -> None:
    code = (
        "import sys, logging; before = set(sys.modules); import modelport; "
        f"heavy = [m for m in {HEAVY!r} if m in sys.modules]; "
        "assert not heavy, heavy; assert not logging.getLogger().handlers; print('ok')"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_every_setting_has_a_cli_flag() -> None:
    help_text = subprocess.run(
        [sys.executable, "-m", "modelport", "--help"],
        capture_output=True,
        text=True,
        check=True,
        env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"},
    ).stdout
    for field in Settings.model_fields:
        flag = "--" + field.replace("_", "-")
        assert flag in help_text, f"setting {field!r} has no CLI flag {flag}"


def test_version_flag() -> None:
    out = subprocess.run([sys.executable, "-m", "modelport", "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == f"modelport {modelport.__version__}"
