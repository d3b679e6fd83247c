"""The CLI end to end in a temporary MODELPORT_HOME: quickstart, models, predict, and user mistakes."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from .conftest import CliRunner


@pytest.fixture
def quickstarted(cli: CliRunner) -> CliRunner:
    result = cli("quickstart")
    assert result.exit_code == 0, result.stderr
    return cli


def test_quickstart_registers_and_promotes(quickstarted: CliRunner) -> None:
    listing = quickstarted("models", "list", "--json").json()
    assert [m["name"] for m in listing] == ["quickstart-model"]
    shown = quickstarted("models", "show", "quickstart-model@production", "--json").json()
    assert shown["version"] == 1
    assert "production" in shown["aliases"]
    human = quickstarted("models", "list")
    assert "quickstart-model" in human.stdout
    assert "production" in human.stdout


def test_quickstart_twice_moves_production(quickstarted: CliRunner) -> None:
    assert quickstarted("quickstart").exit_code == 0
    shown = quickstarted("models", "show", "quickstart-model@production", "--json").json()
    assert shown["version"] == 2


def test_predict_file_matches_model(quickstarted: CliRunner, tmp_path: Path) -> None:
    from modelport.api import load_model

    csv = tmp_path / "home" / "quickstart" / "patients.csv"
    out = tmp_path / "preds.parquet"
    result = quickstarted(
        "predict", "quickstart-model@production", "--input", str(csv), "--output", str(out), "--proba"
    )
    assert result.exit_code == 0, result.stderr
    preds = pd.read_parquet(out)
    frame = pd.read_csv(csv)
    assert len(preds) == len(frame)
    assert {"prediction", "proba_0", "proba_1"} <= set(preds.columns)
    # Same predictions as the Python API.
    import os

    os.environ["MODELPORT_HOME"] = str(tmp_path / "home")
    expected = load_model("quickstart-model@production").predict(frame)
    assert preds["prediction"].tolist() == expected.tolist()


def test_alias_delete_and_audit(quickstarted: CliRunner) -> None:
    assert quickstarted("quickstart").exit_code == 0
    assert quickstarted("models", "alias", "quickstart-model", "1", "legacy", "--reason", "keep v1").exit_code == 0
    blocked = quickstarted("models", "delete", "quickstart-model:1")
    assert blocked.exit_code != 0
    assert "alias" in blocked.stderr.lower()
    audit = quickstarted("models", "audit", "quickstart-model", "--json").json()
    actions = [r["action"] for r in audit]
    assert any("register" in a for a in actions)
    assert any("alias" in a for a in actions)
    assert all(r["actor"] == "cli-tester" for r in audit)
    human = quickstarted("models", "audit", "quickstart-model")
    assert human.exit_code == 0, human.stderr
    assert "keep v1" in human.stdout


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["models", "show", "nope"], "nope"),
        (["models", "show", "../etc/passwd:1"], "Invalid"),
        (["models", "show", "Bad Name"], "Invalid model name"),
        (["predict", "nope@production", "--input", "x.csv"], "nope"),
        (["models", "register", "./no-such-bundle"], "no-such-bundle"),
        (["models", "delete", "quickstart-model"], "explicit version"),
    ],
)
def test_user_mistakes_are_one_line_not_tracebacks(cli: CliRunner, args: list[str], needle: str) -> None:
    result = cli(*args)
    assert result.exit_code not in (0, 1), result
    assert needle in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert "hint:" in result.stderr


def test_predict_bad_input_file(quickstarted: CliRunner, tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("mean radius,oops\n1,2\n")
    result = quickstarted("predict", "quickstart-model@production", "--input", str(bad))
    assert result.exit_code == 2
    assert "column" in result.stderr
    unknown = quickstarted("predict", "quickstart-model@production", "--input", str(tmp_path / "x.xlsx"))
    assert unknown.exit_code != 0
    assert ".xlsx" in unknown.stderr
