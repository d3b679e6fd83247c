"""``examples/ci/pipeline.sh`` for real: a subprocess with the venv's ``modelport``, in a temporary MODELPORT_HOME.

It is kept apart from ``test_governance_cli.py`` because each of its ``modelport`` subprocesses
pays the full import of scikit-learn and skops (about 20 s in all on a busy machine).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from .conftest import CliRunner
from .governance_support import acting_as, issue_key, ok, refused

PIPELINE = Path(__file__).resolve().parents[2] / "examples" / "ci" / "pipeline.sh"


def test_the_ci_pipeline_runs_end_to_end(cli: CliRunner, tmp_path: Path) -> None:
    """examples/ci/pipeline.sh, as CI runs it: the CI user's key, a protected production, a fresh checkout."""
    root_key = issue_key(cli, "users", "bootstrap", "root")
    root = acting_as(cli, root_key)
    ok(root("users", "create", "ci", "data_scientist"))
    ci_key = issue_key(root, "users", "key", "ci", "--label", "github actions")
    ok(root("users", "create", "alice", "approver"))
    alice_key = issue_key(root, "users", "key", "alice")
    ok(root("policy", "set", "--recommended", "--latency-budget-ms", "5000", "--reason", "production needs review"))

    bin_dir = Path(sys.executable).parent
    env = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        "MODELPORT_HOME": str(tmp_path / "home"),
        "MODELPORT_API_KEY": ci_key,
        "MODELPORT_USER": "ci",
        "MODEL": "churn",
        "OUT": str(tmp_path / "build"),
        "GITHUB_SHA": "abc1234",
    }
    run = subprocess.run(
        ["bash", str(PIPELINE)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180, check=False
    )
    assert run.returncode == 0, f"stdout:\n{run.stdout}\nstderr:\n{run.stderr}"
    assert "Promotion request 1 is open" in run.stdout
    validation = json.loads((tmp_path / "build" / "validation.json").read_text())
    assert validation["passed"] is True
    assert validation["created_by"] == "ci"
    assert json.loads((tmp_path / "build" / "promotion.json").read_text())["moved"] is False
    assert ok(cli("models", "show", "churn@staging", "--json")).json()["version"] == 1

    # The human half: an approver (never the CI user) approves; production moves.
    refused(cli("--api-key", ci_key, "approve", "1"), "approver")
    ok(cli("--api-key", alice_key, "approve", "1", "--reason", "report reviewed"))
    assert ok(cli("models", "show", "churn@production", "--json")).json()["version"] == 1
    trail = [(e["action"], e["actor"]) for e in ok(cli("audit", "churn", "--json")).json()]
    assert ("promotion.request", "ci") in trail
    assert ("promotion.approve", "alice") in trail
